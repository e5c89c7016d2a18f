"""Runs compiled as a binary search (runs.py) give the verdicts and counters of the
linear walk, including first-occurrence duplicates and the tcp hotdrop, on every flavor."""

from __future__ import annotations

import pytest

from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.verify import packets as P
from bpfilter.verify.netns import call_in_netns
from tests.kernel._matchers_lab import (
    FLAVORS,
    Lab,
    frame,
    lab,  # noqa: F401  (fixture)
    need,
    ruleset,
    tcp,
    truncated,
    udp,
)

pytestmark = pytest.mark.kernel

SRC_RUN = [f"-s 10.1.{i % 7}.{i % 7}/32 -j DROP" for i in range(12)] + ["-s 10.1.3.3/32"]
PORT_RUN = [f"-p tcp --dport {p} -j ACCEPT" for p in (22, 80, 443, 80, 8080, 25, 110, 143, 993)]
TEXT = ruleset("\n".join(f"-A INPUT {r}" for r in ["-p icmp -j ACCEPT", *SRC_RUN, *PORT_RUN,
                                                  "-j DROP"]))
PKTS = [udp(src="10.1.0.0"), udp(src="10.1.3.3"), udp(src="10.1.6.6"), udp(src="10.1.7.7"),
        tcp(dport=80), tcp(dport=993), tcp(dport=22), tcp(dport=81), tcp(dport=80, frag=16),
        truncated(P.IPPROTO_TCP, 10), udp(dport=80)]


def _run(lb: Lab, flavor: str, min_run: int) -> tuple[list[str], dict]:
    table = parse_restore(TEXT, family=Family.IPV4).table("filter")
    assert table is not None

    def body() -> tuple[list[str], dict]:
        progs = compile_table(table, Family.IPV4, flavor, min_run=min_run)  # type: ignore[arg-type]
        with LoadedTable(progs) as lt:
            out = [lt.deliver("INPUT", frame(lb, p), lb.ifindex).verdict for p in PKTS]
            return out, lt.all_counters()

    return call_in_netns(lb.ns, body)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_search_equals_linear_walk(lab: Lab, flavor: str) -> None:  # noqa: F811
    need("tcp")
    linear = _run(lab, flavor, min_run=10**9)
    searched = _run(lab, flavor, min_run=8)
    assert searched == linear
    verdicts, counters = searched
    assert verdicts == ["DROP", "DROP", "DROP", "DROP", "ACCEPT", "ACCEPT", "ACCEPT", "DROP",
                        "DROP", "DROP", "DROP"]
    assert counters[("INPUT", 2)][0] == 1  # 10.1.0.0 hits the first 10.1.0.0 rule only
    assert counters[("INPUT", 9)] == (0, 0)  # the duplicate of rule 2 never counts
    assert counters[("INPUT", 5)][0] == 1  # 10.1.3.3: first occurrence
    assert counters[("INPUT", 16)][0] == 1 and counters[("INPUT", 18)] == (0, 0)  # dport 80
