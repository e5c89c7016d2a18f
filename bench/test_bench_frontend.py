"""Parse speed of generated rulesets (text → IR)."""

from __future__ import annotations

from bench.conftest import text
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family


def test_parse(benchmark, kind: str, n_rules: int) -> None:
    t = text(kind, n_rules)
    rs = benchmark.pedantic(parse_restore, args=(t,), kwargs={"family": Family.IPV4},
                            rounds=1 if n_rules >= 10000 else 3)
    assert len(rs.table("filter").chain("INPUT").rules) == len(t.splitlines()) - 5
