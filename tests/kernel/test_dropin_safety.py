"""Nothing is lost on failure: a restore that fails or dies leaves the old ruleset filtering.

Failures are forced where they can really happen (the verifier, the netfilter
fallback, an attachment, the moment before the state is saved) through the
pipeline's test-only hooks (BPFILTER_TEST_FAIL_AT / _PAUSE_AT, documented in
bpfilter/pipeline.py), and the old ruleset is checked with real packets through
the router lab, with `bpfilter-save`, and with the netfilter table bpfilter
handed to iptables-legacy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.test_pipeline import RULES_V1, RULES_V2, Probe
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

NAT_V1 = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth9 -j MASQUERADE
COMMIT
"""
V1 = RULES_V1 + NAT_V1
V2 = RULES_V2 + NAT_V1.replace("eth9", "eth8")
BIN = Path(sys.executable).parent


class Dut:
    """bpfilter commands (and iptables-legacy-save) inside the lab's router namespace."""

    def __init__(self, lab, run_dir: Path) -> None:
        self.lab = lab
        self.run_dir = run_dir
        self.env = {**os.environ, "BPFILTER_RUN_DIR": str(run_dir),
                    "BPFILTER_IPTABLES_RESTORE": "iptables-legacy-restore",
                    "BPFILTER_IPTABLES_SAVE": "iptables-legacy-save"}

    def argv(self, *argv: str) -> list[str]:
        exe = str(BIN / argv[0]) if argv[0].startswith("bpfilter") else argv[0]
        return ["ip", "netns", "exec", self.lab.dut, exe, *argv[1:]]

    def run(self, *argv: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
        """Input may carry undecodable bytes (surrogateescape), as bad files do."""
        proc = subprocess.run(self.argv(*argv), input=stdin.encode("utf-8", "surrogateescape"),
                              capture_output=True, env={**self.env, **env}, timeout=180)
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(errors="replace"),
                                           proc.stderr.decode(errors="replace"))

    def start(self, *argv: str, stdin: str, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(self.argv(*argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **env})
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        proc.stdin = None  # communicate() must not flush it again
        return proc

    def nat(self) -> str:
        return self.run("iptables-legacy-save", "-t", "nat").stdout


@pytest.fixture
def dut(router_lab, tmp_path: Path):
    ok, why = bpf_available()
    require_kernel(ok, why)
    d = Dut(router_lab, tmp_path)
    try:
        yield d, Probe(router_lab)
    finally:
        d.run("bpfilter", "flush")
        subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], capture_output=True)


def assert_v1_in_force(d: Dut, probe: Probe) -> None:
    """V1 drops udp/7001 to the router and forwarding to 20/8; V2 would do 7002 and 70/8."""
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7002) == 5
    assert probe.arrived("20.0.0.1", 7000) == 0
    assert probe.arrived("70.0.0.1", 7000) == 5
    saved = d.run("bpfilter-save").stdout
    assert "--dport 7001 -j DROP" in saved and "-d 20.0.0.0/8" in saved
    assert "-o eth9 -j MASQUERADE" in d.nat()
    status = d.run("bpfilter", "status").stdout
    assert "MISSING" not in status and "generation 1" in status
    assert not list((d.run_dir / "state").rglob("*.journal.json"))


def assert_v2_in_force(d: Dut, probe: Probe) -> None:
    assert probe.arrived("10.0.0.1", 7001) == 5
    assert probe.arrived("10.0.0.1", 7002) == 0
    assert probe.arrived("20.0.0.1", 7000) == 5
    assert probe.arrived("70.0.0.1", 7000) == 0
    assert "-o eth8 -j MASQUERADE" in d.nat()


@pytest.mark.parametrize("hook", ["nf", "xdp"])
@pytest.mark.parametrize(("point", "says"), [
    ("verifier", "verifier refused program"),
    ("netfilter", "netfilter: failure forced"),
    ("attach", "attach: failure forced"),
    ("commit", "commit: failure forced"),
])
def test_forced_failure_keeps_previous_ruleset(dut, hook: str, point: str, says: str) -> None:
    d, probe = dut
    r = d.run("bpfilter-restore", "--hook", hook, stdin=V1)
    assert r.returncode == 0, r.stderr
    r = d.run("bpfilter-restore", "--hook", hook, stdin=V2, BPFILTER_TEST_FAIL_AT=point)
    assert r.returncode == 1
    assert says in r.stderr and "previous ruleset stays in force" in r.stderr, r.stderr
    if point == "verifier":
        assert "R0 !read_ok" in r.stderr  # the kernel's own words, from the verifier log
    assert_v1_in_force(d, probe)
    # And the next restore works normally.
    assert d.run("bpfilter-restore", "--hook", hook, stdin=V2).returncode == 0
    assert_v2_in_force(d, probe)


def _pause(d: Dut, hook: str, point: str, tmp: Path) -> tuple[subprocess.Popen, Path]:
    marker = tmp / f"pause-{point}"
    proc = d.start("bpfilter-restore", "--hook", hook, stdin=V2,
                   BPFILTER_TEST_PAUSE_AT=point, BPFILTER_TEST_PAUSE_FILE=str(marker))
    for _ in range(6000):  # the restore reaches the pause point (bounded wait, not timed)
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert marker.exists(), proc.communicate()
    return proc, marker


@pytest.mark.parametrize("hook", ["nf", "xdp"])
@pytest.mark.parametrize("point", ["swap", "commit"])
def test_kill_mid_commit_then_any_command_rolls_back(dut, tmp_path, hook: str,
                                                     point: str) -> None:
    """SIGKILL after the first attachment changed (or all did, state not yet saved)."""
    d, probe = dut
    assert d.run("bpfilter-restore", "--hook", hook, stdin=V1).returncode == 0
    proc, _ = _pause(d, hook, point, tmp_path)
    proc.kill()
    proc.wait()
    status = d.run("bpfilter", "status")
    assert "rolled back the interrupted restore of generation 2" in status.stdout, status
    assert_v1_in_force(d, probe)
    assert d.run("bpfilter-restore", "--hook", hook, stdin=V2).returncode == 0
    assert_v2_in_force(d, probe)


def test_ctrl_c_before_commit_changes_nothing(dut, tmp_path) -> None:
    d, probe = dut
    assert d.run("bpfilter-restore", stdin=V1).returncode == 0
    proc, marker = _pause(d, "nf", "prepare", tmp_path)
    proc.send_signal(signal.SIGINT)
    marker.unlink()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "previous ruleset stays in force" in err, err
    assert_v1_in_force(d, probe)


def test_ctrl_c_during_commit_is_deferred_until_complete(dut, tmp_path) -> None:
    d, probe = dut
    assert d.run("bpfilter-restore", stdin=V1).returncode == 0
    proc, marker = _pause(d, "nf", "swap", tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    marker.unlink()
    _, err = proc.communicate(timeout=120)
    # Either outcome is whole: here the commit was under way, so it completes.
    assert proc.returncode in (130, -signal.SIGTERM), err
    assert_v2_in_force(d, probe)
    assert "generation 2" in d.run("bpfilter", "status").stdout
