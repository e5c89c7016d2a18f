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
