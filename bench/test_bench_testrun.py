"""ns/packet through BPF_PROG_TEST_RUN: first-, middle-, last- and no-match probes.

The number that matters is the kernel's own mean over `repeat` runs
(extra_info["ns_per_packet"]); pytest-benchmark's wall time includes the syscall.
Also records compile and load (verifier + map fill) seconds.
"""

from __future__ import annotations

import time

import pytest

from bench.conftest import rules, table
from bench.measure import compile_kw, frame
from bench.rulesets import probe_packets
from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.ir import Family
from bpfilter.verify.netns import call_in_netns

pytestmark = pytest.mark.kernel
REPEAT = 100000


@pytest.mark.parametrize("flavor", ["xdp", "tc", "nf"])
def test_testrun(benchmark, bench_lab, kind: str, n_rules: int, flavor: str) -> None:
    rs = rules(kind, n_rules)
    t = table(kind, n_rules)
    probes = probe_packets(rs)
    hook = "INPUT" if flavor == "nf" else "ingress"
    repeat = REPEAT if not benchmark.disabled else 10

    def body():
        t0 = time.perf_counter()
        progs = compile_table(t, Family.IPV4, flavor, **compile_kw("lookup"))
        t1 = time.perf_counter()
        with LoadedTable(progs) as lt:
            t2 = time.perf_counter()
            out = {}
            for name, (pkt, idx) in probes.items():
                res = lt.run(hook, frame(pkt, bench_lab.mac), bench_lab.ifindex, repeat=repeat)
                want = "ACCEPT" if idx is None else rs[idx].verdict
                assert res.verdict == want, (name, pkt, idx)
                out[name] = res.duration_ns
            # the benchmarked call: one probe through test_run (wall time incl. syscall)
            pkt = frame(probes["last"][0], bench_lab.mac)
            benchmark.pedantic(lt.run, args=(hook, pkt, bench_lab.ifindex, repeat),
                               rounds=3 if not benchmark.disabled else 1)
            return out, t1 - t0, t2 - t1

    ns, compile_s, load_s = call_in_netns(bench_lab.ns, body)
    benchmark.extra_info.update({f"ns_{k}": v for k, v in ns.items()})
    benchmark.extra_info.update(compile_s=round(compile_s, 3), load_s=round(load_s, 3))
    assert set(ns) == {"first", "middle", "last", "none"}
