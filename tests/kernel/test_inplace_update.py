"""A re-restore that changes only map-held rules rewrites the lookup maps in place.

Through the real `bpfilter-restore` in a router lab: a ~2k-rule ClassBench-like INPUT
chain (one tree lookup) is loaded, then one rule in the middle of it changes. The
new verdict must hold for real packets, the attached programs must be the same ones
(same program id under every link: nothing was recompiled or re-attached), and the
counters must behave as iptables-legacy-restore's: a restore without -c restarts the
table's counters at 0, with -c they start from the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.rulesets import HEAD, TAIL, classbench
from bpfilter.attach import Link
from bpfilter.verify.netns import call_in_netns
from tests.kernel.test_pipeline import Cli, Probe, counters_of
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

PROBE_SRC, PROBE_DST = (172 << 24) | (16 << 16) | (9 << 8) | 1, (10 << 24) | 1
MINE = "-A INPUT -s 172.16.9.1/32 -d 10.0.0.1/32 -p udp -m udp --dport {port} -j {verdict}"
KEPT = "-A INPUT -s 172.16.9.1/32 -d 10.0.0.1/32 -p udp -m udp --dport 7003 -j DROP"


def ruleset(port: int, verdict: str, n: int = 2000) -> str:
    """n ClassBench-like rules none of which sees the probes, with ours at 1000 (the one
    that changes) and an unchanged one at 500."""
    rules = [r for r in classbench(n + 50, seed=3)
             if not (r.matches(PROBE_SRC, PROBE_DST, 17, 1024, 7001)
                     or any(r.matches(PROBE_SRC, PROBE_DST, 17, 1024, p)
                            for p in (7001, 7002, 7003)))][:n]
    lines = [r.line() for r in rules]
    lines.insert(1000, MINE.format(port=port, verdict=verdict))
    lines.insert(500, KEPT)
    return HEAD + "".join(x + "\n" for x in lines) + TAIL


@pytest.fixture
def env(router_lab, tmp_path: Path):
    ok, why = bpf_available()
    require_kernel(ok, why)
    cli = Cli(router_lab, tmp_path)
    try:
        yield cli, Probe(router_lab), tmp_path
    finally:
        cli.run("bpfilter", "flush")
        import subprocess

        subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], capture_output=True)


def attached_programs(cli: Cli, run_dir: Path) -> dict[str, int]:
    """Program id under each pinned link (looked up inside the lab's namespace)."""
    return call_in_netns(cli.lab.dut, _link_programs, run_dir)


def _link_programs(run_dir: Path) -> dict[str, int]:
    out = {}
    for pin in sorted((run_dir / "bpffs").glob("*/ipv4/links/*")):
        if pin.name.endswith("_slot"):  # a netfilter link's program slot (attach/netfilter.py)
            continue
        link = Link.from_pin(pin)
        try:
            out[pin.name] = link.prog_id
        finally:
            link.close()
    return out


def state(run_dir: Path) -> dict:
    (path,) = (run_dir / "state").glob("*/ipv4.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("hook", ["nf", "xdp"])
def test_one_rule_change_updates_maps_in_place(env, hook: str) -> None:
    cli, probe, run_dir = env
    r = cli.run("bpfilter-restore", "--hook", hook, stdin=ruleset(7001, "DROP"))
    assert r.returncode == 0, r.stderr
    progs = attached_programs(cli, run_dir)
    assert progs and state(run_dir)["programs"][0]["map_pins"], "lookup maps are pinned"
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7002) == 5
    assert probe.arrived("10.0.0.1", 7003) == 0
    saved = cli.run("bpfilter-save", "-c").stdout
    assert counters_of(saved, "--dport 7001 -j DROP")[0] == 5
    assert counters_of(saved, "--dport 7003 -j DROP")[0] == 5

    # one rule's port changes: written into the maps, the same programs stay attached
    r = cli.run("bpfilter-restore", "--hook", hook, stdin=ruleset(7002, "DROP"))
    assert r.returncode == 0, r.stderr
    assert attached_programs(cli, run_dir) == progs
    st = state(run_dir)
    assert st["generation"] == 2 and len(st["inplace_log"]) == 1
    assert probe.arrived("10.0.0.1", 7001) == 5
    assert probe.arrived("10.0.0.1", 7002) == 0
    saved = cli.run("bpfilter-save", "-c").stdout
    assert "--dport 7002 -j DROP" in saved and "--dport 7001 -j DROP" not in saved
    # iptables-legacy-restore without -c: the replaced table counts from 0 again
    assert counters_of(saved, "--dport 7002 -j DROP")[0] == 5  # only the new packets
    assert counters_of(saved, "--dport 7003 -j DROP") == (0, 0)  # kept rule: reset too
    assert probe.arrived("10.0.0.1", 7003) == 0
    assert counters_of(cli.run("bpfilter-save", "-c").stdout, "--dport 7003")[0] == 5

    # the same rule's verdict changes, with -c: a second in-place change on top of the
    # first (the maps' mirror is rebuilt from the log), counters from the input
    text = ruleset(7002, "ACCEPT").replace(KEPT, "[42:4200] " + KEPT)
    r = cli.run("bpfilter-restore", "-c", "--hook", hook, stdin=text)
    assert r.returncode == 0, r.stderr
    assert attached_programs(cli, run_dir) == progs
    assert len(state(run_dir)["inplace_log"]) == 2
    assert probe.arrived("10.0.0.1", 7002) == 5
    assert probe.arrived("10.0.0.1", 7001) == 5
    saved = cli.run("bpfilter-save", "-c").stdout
    assert counters_of(saved, "--dport 7003 -j DROP") == (42, 4200)
    assert counters_of(saved, "--dport 7002 -j ACCEPT")[0] == 5

    # and back to the original by a full save/restore round trip: still in place
    r = cli.run("bpfilter-restore", "--hook", hook, stdin=ruleset(7001, "DROP"))
    assert r.returncode == 0, r.stderr
    assert attached_programs(cli, run_dir) == progs
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7002) == 5

    # a change outside the lookup (the policy) recompiles: new programs, empty log
    r = cli.run("bpfilter-restore", "--hook", hook,
                stdin=ruleset(7001, "DROP").replace(":FORWARD ACCEPT", ":FORWARD DROP"))
    assert r.returncode == 0, r.stderr
    assert attached_programs(cli, run_dir) != progs
    assert state(run_dir)["inplace_log"] == []
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7002) == 5


def test_failed_in_place_update_is_rolled_back(env) -> None:
    """A failure after the maps were rewritten (forced at the commit point) puts the old
    nodes back from the journal: the old verdict holds, the state is unchanged, and the
    next re-restore is again done in place (the mirror still matches the kernel)."""
    cli, probe, run_dir = env
    assert cli.run("bpfilter-restore", stdin=ruleset(7001, "DROP")).returncode == 0
    progs = attached_programs(cli, run_dir)
    cli.env["BPFILTER_TEST_FAIL_AT"] = "commit"
    try:
        r = cli.run("bpfilter-restore", stdin=ruleset(7002, "DROP"))
    finally:
        del cli.env["BPFILTER_TEST_FAIL_AT"]
    assert r.returncode != 0 and "forced" in r.stderr, r.stderr
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7002) == 5
    st = state(run_dir)
    assert st["generation"] == 1 and st["inplace_log"] == []
    assert not list((run_dir / "state").glob("*/ipv4.journal.json"))

    r = cli.run("bpfilter-restore", stdin=ruleset(7002, "DROP"))
    assert r.returncode == 0, r.stderr
    assert attached_programs(cli, run_dir) == progs and len(state(run_dir)["inplace_log"]) == 1
    assert probe.arrived("10.0.0.1", 7001) == 5
    assert probe.arrived("10.0.0.1", 7002) == 0


def test_killed_in_place_update_is_undone_by_next_command(env, tmp_path: Path) -> None:
    """SIGKILL after the maps were rewritten but before the state was saved: the next
    bpfilter command finds the journal and writes the old nodes element back."""
    import os
    import signal
    import subprocess
    import time

    cli, probe, run_dir = env
    assert cli.run("bpfilter-restore", stdin=ruleset(7001, "DROP")).returncode == 0
    marker = tmp_path / "paused"
    env = {**cli.env, "BPFILTER_TEST_PAUSE_AT": "commit", "BPFILTER_TEST_PAUSE_FILE": str(marker)}
    proc = subprocess.Popen(["ip", "netns", "exec", cli.lab.dut,
                             str(cli.bin / "bpfilter-restore")], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            text=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write(ruleset(7002, "DROP"))
        proc.stdin.close()
        for _ in range(1500):  # the pause, not a timing assertion: wait up to 30 s
            if marker.exists() and marker.read_text():
                break
            time.sleep(0.02)
        assert marker.exists(), "the restore never reached the commit point"
        # paused with the maps already rewritten: the new verdict is in force
        assert probe.arrived("10.0.0.1", 7002) == 0
        os.kill(int(marker.read_text()), signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        marker.unlink(missing_ok=True)
    r = cli.run("bpfilter", "status")
    assert "rolled back" in r.stdout, r.stdout + r.stderr
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7002) == 5
    assert state(run_dir)["generation"] == 1
