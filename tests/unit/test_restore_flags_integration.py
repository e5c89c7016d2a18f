"""The integration files in bpfilter/data: what they run, checked without touching the host.

The netfilter-persistent plugin is executed for real with stub `bpfilter*`
commands first on PATH (they record their argv and stdin), so the test proves
which rules file goes to which command, that `save` never replaces a rules file
with an empty ruleset, and the exit status on failure. The systemd unit and the
udev rule are parsed and their commands checked against the installed entry points.
"""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
from pathlib import Path

import pytest

from bpfilter.cli import DATA_DIR, main

PLUGIN = DATA_DIR / "netfilter-persistent" / "15-bpfilter"
RULES_V4 = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n"
RULES_V6 = "*filter\n:INPUT DROP [0:0]\nCOMMIT\n"


@pytest.fixture
def stubs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bin dir of recording stubs; BPFILTER_STUB_FAIL / _SAVE control their behaviour."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("bpfilter", "bpfilter-restore", "bpfilter6-restore", "bpfilter-save",
                 "bpfilter6-save"):
        script = bindir / name
        script.write_text(f"""#!/bin/sh
printf '%s %s\\n' "{name}" "$*" >> "{log}"
case "{name}" in *-restore) sed 's/^/  stdin: /' >> "{log}" ;; esac
case "{name}" in *-save) printf '%s' "$BPFILTER_STUB_SAVE" ;; esac
[ "$BPFILTER_STUB_FAIL" = "{name}" ] && exit 1
exit 0
""")
        script.chmod(0o755)
    rules = tmp_path / "etc-iptables"
    rules.mkdir()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "BPFILTER_RULES_DIR": str(rules),
           "LOG": str(log)}
    return rules, env


def _plugin(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess:
    """Run the plugin as netfilter-persistent does (the stubs come first on PATH)."""
    return subprocess.run([str(PLUGIN), *args], capture_output=True, text=True,
                          env={**env, **extra})


def _calls(env: dict[str, str]) -> str:
    path = Path(env["LOG"])
    return path.read_text() if path.exists() else ""


def test_plugin_is_executable_shell() -> None:
    assert PLUGIN.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["sh", "-n", str(PLUGIN)]).returncode == 0


def test_plugin_start_loads_both_families(stubs) -> None:
    rules, env = stubs
    (rules / "rules.v4").write_text(RULES_V4)
    (rules / "rules.v6").write_text(RULES_V6)
    r = _plugin(env, "start")
    assert r.returncode == 0, r.stderr
    calls = _calls(env)
    assert "bpfilter-restore -w 10\n  stdin: *filter\n  stdin: :INPUT ACCEPT [0:0]" in calls
    assert "bpfilter6-restore -w 10\n  stdin: *filter\n  stdin: :INPUT DROP [0:0]" in calls


def test_plugin_start_without_v6_file_and_failure_exit(stubs) -> None:
    rules, env = stubs
    (rules / "rules.v4").write_text(RULES_V4)
    r = _plugin(env, "reload", BPFILTER_STUB_FAIL="bpfilter-restore")
    assert r.returncode == 1 and "rules.v4 not loaded" in r.stderr
    assert "bpfilter6-restore" not in _calls(env)


def test_plugin_save_never_writes_an_empty_ruleset(stubs) -> None:
    rules, env = stubs
    (rules / "rules.v4").write_text(RULES_V4)
    r = _plugin(env, "save", BPFILTER_STUB_SAVE="")
    assert r.returncode == 0, r.stderr
    assert (rules / "rules.v4").read_text() == RULES_V4
    r = _plugin(env, "save", BPFILTER_STUB_SAVE=RULES_V6.rstrip("\n"))
    assert r.returncode == 0
    assert (rules / "rules.v4").read_text() == RULES_V6
    assert (rules / "rules.v6").read_text() == RULES_V6


def test_plugin_flush_and_usage(stubs) -> None:
    _, env = stubs
    assert _plugin(env, "flush").returncode == 0
    assert "bpfilter flush\nbpfilter flush -6\n" in _calls(env)
    r = _plugin(env, "bogus")
    assert r.returncode == 1 and "Usage:" in r.stderr


def test_systemd_unit_runs_installed_commands() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment]
    text = (DATA_DIR / "bpfilter.service").read_text()
    # ExecStart= repeats; configparser keeps the last, so check the raw lines too.
    unit.read_string(text)
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["RemainAfterExit"] == "yes"
    assert "network-pre.target" in unit["Unit"]["Before"]
    starts = [x.split("=", 1)[1] for x in text.splitlines() if x.startswith("ExecStart=")]
    assert any("bpfilter-restore -w 10 /etc/iptables/rules.v4" in s for s in starts)
    assert any("bpfilter6-restore -w 10 /etc/iptables/rules.v6" in s for s in starts)


def test_udev_rule_runs_attach_new() -> None:
    text = (DATA_DIR / "90-bpfilter.rules").read_text()
    rule = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert len(rule) == 1
    assert 'ACTION=="add", SUBSYSTEM=="net"' in rule[0]
    assert "bpfilter attach-new;" in rule[0] and "bpfilter attach-new -6" in rule[0]


def test_data_dir_command(capsys) -> None:
    assert main(["data-dir"]) == 0
    assert Path(capsys.readouterr().out.strip()) == DATA_DIR
    assert os.access(DATA_DIR / "bpfilter.service", os.R_OK)
