"""bpfilter-restore's command line, parsed as iptables-restore 1.8.9's getopt_long does.

The kernel suite (tests/kernel/test_dropin_flags.py) checks the same flags
against the real tool; these pin the parsing itself without root.
"""

from __future__ import annotations

import pytest

from bpfilter import cli
from bpfilter.cli import UsageError, parse_restore_args


@pytest.fixture(autouse=True)
def _private_run_dir(tmp_path, monkeypatch) -> None:
    """-t reads the loaded state: point it at an empty directory, never /run/bpfilter."""
    monkeypatch.setenv("BPFILTER_RUN_DIR", str(tmp_path / "run"))


def test_short_and_long_flags() -> None:
    a = parse_restore_args(["-cvn", "--test", "-T", "nat", "rules.v4"], "p")
    assert (a.counters, a.verbose, a.noflush, a.test, a.table, a.file) == (
        True, 1, True, True, "nat", "rules.v4")
    assert parse_restore_args(["--table=raw", "--noflush"], "p").table == "raw"
    assert parse_restore_args(["--nofl"], "p").noflush  # unique prefixes, like glibc


@pytest.mark.parametrize(("argv", "wait", "file"), [
    ([], 0.0, None), (["-w"], None, None), (["-w", "5"], 5.0, None),
    (["--wait=7", "f"], 7.0, "f"), (["-w", "-n"], None, None), (["-w", "f"], None, None),
])
def test_wait_takes_next_word_only_when_numeric_like(argv, wait, file) -> None:
    if argv == ["-w", "f"]:  # iptables reads the next word as seconds and refuses it
        with pytest.raises(UsageError, match="wait seconds not numeric"):
            parse_restore_args(argv, "p")
        return
    a = parse_restore_args(argv, "p")
    assert (a.wait, a.file) == (wait, file)


@pytest.mark.parametrize(("argv", "message"), [
    (["-x"], "p: invalid option -- 'x'"),
    (["-cx"], "p: invalid option -- 'x'"),
    (["-w5"], "p: invalid option -- '5'"),
    (["--bogus"], "p: unrecognized option '--bogus'"),
    (["-T"], "p: option requires an argument -- 'T'"),
    (["--hook", "ebpf"], "p: --hook must be one of auto, xdp, tc, nf"),
])
def test_usage_errors_worded_like_glibc(argv, message) -> None:
    with pytest.raises(UsageError) as e:
        parse_restore_args(argv, "p")
    assert str(e.value) == message


def test_wait_interval_needs_wait(capsys) -> None:
    assert cli.restore_main(["-W", "10", "/dev/null"]) == 1
    err = capsys.readouterr().err
    assert err == ("Ignoring deprecated --wait-interval option.\n"
                   "Option --wait-interval requires option --wait\n")


def test_test_flag_exit_codes(tmp_path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.write_text("*filter\n-A INPUT -s 1.2.3.999 -j DROP\nCOMMIT\n")
    assert cli.restore_main(["-t", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "host/network `1.2.3.999' not found\nError occurred at line: 2" in err
    nocommit = tmp_path / "nocommit"
    nocommit.write_text("*filter\n-A INPUT -j DROP\n")
    assert cli.restore_main(["-t", str(nocommit)]) == 1
    assert "COMMIT expected at line 3" in capsys.readouterr().err


def test_help_and_version(capsys) -> None:
    assert cli.restore_main(["-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: ") and "--hook" in out and "[ --noflush ]" in out
    assert cli.restore_main(["-V"]) == 0
    assert capsys.readouterr().out.endswith(" v1.8.9 (bpfilter)\n")


def test_speaks_as_iptables_restore_when_installed_under_that_name(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["/usr/sbin/iptables-restore"])
    assert cli.restore_main(["-x"]) == 1
    assert capsys.readouterr().err.startswith("iptables-restore: invalid option -- 'x'\n")
    monkeypatch.setattr("sys.argv", ["/usr/bin/python3"])  # e.g. python -m: own name
    assert cli.restore_main(["-x"]) == 1
    assert capsys.readouterr().err.startswith("bpfilter-restore: invalid option")
