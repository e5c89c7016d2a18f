"""CLI front ends: `bpfilter print` and `bpfilter-restore --test` exit codes and messages."""

from __future__ import annotations

from bpfilter.cli import main, restore6_main, restore_main


def write(tmp_path, text: str, name: str = "rules"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_restore_test_ok(tmp_path, capsys):
    path = write(tmp_path, "*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    assert restore_main(["-t", path]) == 0
    assert restore_main(["--test", "--noflush", "-c", path]) == 0


def test_restore_parameter_problem_wording(tmp_path, capsys):
    path = write(tmp_path, "*filter\n-A INPUT -p tcp --dport 22\n-A INPUT --foo\nCOMMIT\n")
    assert restore_main(["-t", path]) == 2
    err = capsys.readouterr().err
    assert 'unknown option "--foo"' in err
    assert "Error occurred at line: 3" in err


def test_restore_failed_line_wording(tmp_path, capsys):
    path = write(tmp_path, "*filter\n-D INPUT 1\nCOMMIT\n")
    assert restore_main(["-t", path]) == 1
    assert "bpfilter-restore: line 2 failed" in capsys.readouterr().err


def test_restore_commit_expected(tmp_path, capsys):
    path = write(tmp_path, "*filter\n-A INPUT -j ACCEPT\n")
    assert restore_main(["-t", path]) == 1
    assert "COMMIT expected at line 3" in capsys.readouterr().err


def test_restore6_and_table_filter(tmp_path):
    path = write(tmp_path, "*nat\n-A BOGUS\nCOMMIT\n*filter\n-A INPUT -s ::1 -j DROP\nCOMMIT\n")
    assert restore6_main(["-t", "-T", "filter", path]) == 0
    assert restore6_main(["-t", path]) != 0


def test_restore_missing_file(capsys):
    assert restore_main(["-t", "/nonexistent/rules"]) == 1
    assert "Can't open /nonexistent/rules" in capsys.readouterr().err


def test_print_canonical(tmp_path, capsys):
    path = write(tmp_path, "*filter\n:INPUT DROP [1:2]\n[3:4] -A INPUT -s 10.1.1.1 -p 6 --dport 1\n"
                 "COMMIT\n")
    assert main(["print", path]) == 0
    assert capsys.readouterr().out == (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -s 10.1.1.1/32 -p tcp -m tcp --dport 1\nCOMMIT\n")
    assert main(["print", "-c", path]) == 0
    out = capsys.readouterr().out
    assert ":INPUT DROP [1:2]" in out and "[3:4] -A INPUT" in out
