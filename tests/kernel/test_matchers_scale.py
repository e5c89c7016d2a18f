"""A 1000-rule chain loads (verifier stays linear) and counts the right rule."""

from __future__ import annotations

import pytest

from bpfilter.backend.bench import ruleset as bench_ruleset
from tests.kernel._matchers_lab import (
    FLAVORS,
    Lab,
    lab,  # noqa: F401  (fixture)
    need,
    run,
    tcp,
    tot_len,
)

pytestmark = pytest.mark.kernel
RULES = 1000


@pytest.mark.parametrize("flavor", FLAVORS)
def test_thousand_rules(lab: Lab, flavor: str) -> None:  # noqa: F811
    need("tcp")
    # bench_ruleset(n): rule i is `-s 10.(i>>16).(i>>8 & 255).(i & 255)/32 -p tcp
    # --dport 1+i -j DROP`; hit rule 777 (1-based 778) and miss every rule.
    hit = tcp(dport=778, src="10.0.3.9")
    miss = tcp(dport=778, src="10.0.3.10")
    verdicts, counters = run(lab, flavor, bench_ruleset(RULES),
                             [("INPUT", hit), ("INPUT", miss)])
    assert verdicts == ["DROP", "ACCEPT"]
    moved = {k: v for k, v in counters.items() if v != (0, 0)}
    assert moved == {("INPUT", 778): (1, tot_len(hit)), ("INPUT", None): (1, tot_len(miss))}
