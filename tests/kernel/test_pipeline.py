"""The product end to end: `bpfilter-restore` in a namespace, real packets, save, swap, flush.

Every command runs as its own process through `ip netns exec`, as a user would
run it: what is loaded must keep filtering after the command has exited, be
found again by the next command, and be replaced atomically or not at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bpfilter.verify.packets import IPPROTO_UDP, PacketSpec, build_frames
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

RULES_V1 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:udp_in - [0:0]
-A INPUT -p udp -j udp_in
-A FORWARD -d 20.0.0.0/8 -j DROP
-A udp_in -p udp -m udp --dport 7001 -j DROP
-A udp_in -j RETURN
COMMIT
"""

RULES_V2 = RULES_V1.replace("--dport 7001", "--dport 7002").replace("-d 20.0.0.0/8",
                                                                  "-d 70.0.0.0/8")

BAD = RULES_V1.replace("-A udp_in -j RETURN", "-A udp_in -p udp --dport 99999 -j RETURN")


class Cli:
    """Runs bpfilter commands inside the lab's router namespace."""

    def __init__(self, lab, run_dir: Path) -> None:
        self.lab = lab
        self.env = {**os.environ, "BPFILTER_RUN_DIR": str(run_dir)}
        self.bin = Path(sys.executable).parent

    def run(self, *argv: str, stdin: str = "") -> subprocess.CompletedProcess:
        cmd = ["ip", "netns", "exec", self.lab.dut, str(self.bin / argv[0]), *argv[1:]]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=120)


class Probe:
    def __init__(self, lab) -> None:
        self.lab = lab
        self.tag = 1

    def arrived(self, dst: str, dport: int, count: int = 5) -> int:
        specs = []
        for _ in range(count):
            specs.append(PacketSpec("172.16.9.1", dst, IPPROTO_UDP, dport=dport)
                         .with_tags(self.tag))
            self.tag += 1
        frames = [f for s in specs for f in build_frames(s, self.lab.src_mac, self.lab.dut_mac)]
        where = "input" if dst.startswith("10.") else "forward"
        cap = self.lab.send(frames, protocols=(IPPROTO_UDP,))
        return len(cap.tags[where] & {s.tags[0] for s in specs})


@pytest.fixture
def env(router_lab, tmp_path: Path):
    ok, why = bpf_available()
    require_kernel(ok, why)
    cli = Cli(router_lab, tmp_path)
    try:
        yield cli, Probe(router_lab)
    finally:
        cli.run("bpfilter", "flush")
        subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], capture_output=True)


def counters_of(save_text: str, needle: str) -> tuple[int, int]:
    line = next(x for x in save_text.splitlines() if needle in x)
    packets, nbytes = line.split("]")[0].lstrip("[").split(":")
    return int(packets), int(nbytes)


@pytest.mark.parametrize("hook", ["nf", "tc", "xdp"])
def test_restore_filters_after_exit_save_swap_flush(env, hook: str) -> None:
    cli, probe = env
    r = cli.run("bpfilter-restore", "--hook", hook, stdin=RULES_V1)
    assert r.returncode == 0, r.stderr
    # No bpfilter process is left: the command returned and the kernel filters alone.
    assert probe.arrived("10.0.0.1", 7000) == 5
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("20.0.0.1", 7000) == 0
    assert probe.arrived("70.0.0.1", 7000) == 5

    saved = cli.run("bpfilter-save", "-c")
    assert saved.returncode == 0, saved.stderr
    packets, nbytes = counters_of(saved.stdout, "--dport 7001 -j DROP")
    assert packets == 5 and nbytes > 5 * 28
    assert counters_of(saved.stdout, "-A FORWARD -d 20.0.0.0/8")[0] == 5
    plain = cli.run("bpfilter-save").stdout
    assert "-A udp_in -p udp -m udp --dport 7001 -j DROP" in plain
    assert not [x for x in plain.splitlines() if x.startswith("[")]  # rule counters only with -c

    # Replace: the new ruleset takes over in place.
    r = cli.run("bpfilter-restore", "--hook", hook, stdin=RULES_V2)
    assert r.returncode == 0, r.stderr
    assert probe.arrived("10.0.0.1", 7001) == 5
    assert probe.arrived("10.0.0.1", 7002) == 0
    assert probe.arrived("20.0.0.1", 7000) == 5
    assert probe.arrived("70.0.0.1", 7000) == 0

    # Bad input: refused with the line, and the loaded ruleset keeps filtering.
    r = cli.run("bpfilter-restore", "--hook", hook, stdin=BAD)
    assert r.returncode != 0
    assert "line: 9" in r.stderr or "line 9" in r.stderr, r.stderr
    assert probe.arrived("10.0.0.1", 7002) == 0
    assert probe.arrived("10.0.0.1", 7001) == 5

    status = cli.run("bpfilter", "status").stdout
    assert "attached" in status and "MISSING" not in status

    r = cli.run("bpfilter", "flush")
    assert r.returncode == 0, r.stderr
    assert probe.arrived("10.0.0.1", 7002) == 5
    assert probe.arrived("70.0.0.1", 7000) == 5
    assert cli.run("bpfilter", "status").stdout.strip() == "nothing loaded"


def test_counters_flag_loads_input_counters(env) -> None:
    cli, _ = env
    text = RULES_V1.replace("-A FORWARD -d", "[7:700] -A FORWARD -d").replace(
        ":INPUT ACCEPT [0:0]", ":INPUT ACCEPT [3:120]")
    assert cli.run("bpfilter-restore", "-c", stdin=text).returncode == 0
    saved = cli.run("bpfilter-save", "-c").stdout
    assert counters_of(saved, "-A FORWARD -d 20.0.0.0/8") == (7, 700)
    assert ":INPUT ACCEPT [3:120]" in saved
    assert cli.run("bpfilter-restore", stdin=text).returncode == 0
    assert counters_of(cli.run("bpfilter-save", "-c").stdout, "-A FORWARD -d 20") == (0, 0)


def test_test_flag_changes_nothing(env) -> None:
    cli, probe = env
    r = cli.run("bpfilter-restore", "--test", stdin=RULES_V1)
    assert r.returncode == 0, r.stderr
    assert probe.arrived("10.0.0.1", 7001) == 5
    assert cli.run("bpfilter", "status").stdout.strip() == "nothing loaded"
