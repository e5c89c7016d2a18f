"""Concurrent writers never interleave: 20 parallel `bpfilter-restore --noflush -w` runs.

Each run adds one DROP rule for its own source address; all 20 must be in the
loaded ruleset and in the kernel (checked with one packet per source through
the router lab). Without -w, a run that finds the lock taken exits 4 like
iptables-restore, and exactly the runs that succeeded are loaded.
"""

from __future__ import annotations

import subprocess

import pytest

from bpfilter.verify.packets import IPPROTO_UDP, PacketSpec, build_frames
from tests.kernel.test_dropin_safety import dut  # noqa: F401
from tests.kernel.test_pipeline import RULES_V1

pytestmark = pytest.mark.kernel

N = 20


def _rule(i: int) -> str:
    return f"*filter\n-A INPUT -s 150.0.0.{i}/32 -p udp -m udp --dport 7000 -j DROP\nCOMMIT\n"


def _arrivals(lab, sources: list[str]) -> set[str]:
    specs = [PacketSpec(src, "10.0.0.1", IPPROTO_UDP, dport=7000).with_tags(100 + n)
             for n, src in enumerate(sources)]
    frames = [f for s in specs for f in build_frames(s, lab.src_mac, lab.dut_mac)]
    cap = lab.send(frames, protocols=(IPPROTO_UDP,))
    return {src for n, src in enumerate(sources) if 100 + n in cap.tags["input"]}


def _run_parallel(d, flags: list[str]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(d.argv("bpfilter-restore", *flags), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=d.env) for _ in range(N)]
    results = []
    for i, p in enumerate(procs, start=1):
        out, err = p.communicate(_rule(i), timeout=600)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_twenty_parallel_noflush_wait_runs_all_land(dut) -> None:  # noqa: F811
    d, _ = dut
    assert d.run("bpfilter-restore", stdin=RULES_V1).returncode == 0
    results = _run_parallel(d, ["--noflush", "-w"])
    assert [r.returncode for r in results] == [0] * N, [r.stderr for r in results]
    saved = d.run("bpfilter-save").stdout
    for i in range(1, N + 1):
        assert saved.count(f"-A INPUT -s 150.0.0.{i}/32 ") == 1, saved
    assert "-A udp_in -p udp -m udp --dport 7001 -j DROP" in saved  # the base is kept
    assert f"generation {N + 1}" in d.run("bpfilter", "status").stdout
    sources = [f"150.0.0.{i}" for i in range(1, N + 1)] + ["150.0.0.200"]
    assert _arrivals(d.lab, sources) == {"150.0.0.200"}


def test_parallel_runs_without_wait_exit_4_or_land(dut) -> None:  # noqa: F811
    d, _ = dut
    assert d.run("bpfilter-restore", stdin=RULES_V1).returncode == 0
    results = _run_parallel(d, ["--noflush"])
    assert {r.returncode for r in results} <= {0, 4}, [r.stderr for r in results]
    for r in results:
        if r.returncode == 4:
            assert "Another app is currently holding the xtables lock" in r.stderr
    landed = {i for i, r in enumerate(results, start=1) if r.returncode == 0}
    assert landed
    saved = d.run("bpfilter-save").stdout
    assert {i for i in range(1, N + 1) if f"-s 150.0.0.{i}/32 " in saved} == landed
