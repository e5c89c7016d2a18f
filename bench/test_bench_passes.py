"""Optimization passes (pure): 5-tuple boxes, shadow removal, forest construction."""

from __future__ import annotations

from bench.conftest import table
from bpfilter.backend.lookup import find_runs, plan_lookups
from bpfilter.passes.dtree import build_forest
from bpfilter.passes.shadow import remove_shadowed


def test_plan_lookups(benchmark, kind: str, n_rules: int) -> None:
    t = table(kind, n_rules)
    lks = benchmark.pedantic(plan_lookups, args=(t, lambda c, n: n, 1),
                             rounds=1 if n_rules >= 10000 else 3)
    (lk,) = lks.values()
    benchmark.extra_info.update(nodes=len(lk.tree.nodes), entries=len(lk.tree.entries),
                                depth=lk.tree.depth, trees=len(lk.tree.trees))
    assert lk.last == n_rules + (3 if kind == "blocklist" else 0)


def test_forest_only(benchmark, n_rules: int) -> None:
    (run,) = find_runs(table("classbench", n_rules).chain("INPUT").rules, 1)
    boxes = remove_shadowed(run[2])
    forest = benchmark.pedantic(build_forest, args=(boxes,), rounds=1)
    assert forest.max_leaf <= 24
