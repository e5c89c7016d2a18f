"""Benchmark fixtures: rule counts, cached rulesets, and the kernel lab.

With `--benchmark-disable` (the default in pyproject) every benchmark body runs once
as a plain test on small sizes, so `pytest bench` stays quick; `make bench` enables
the benchmarks and runs every size, 10 to 100k rules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache

import pytest

from bench.measure import Lab, lab, parse_table
from bench.rulesets import Rule5, blocklist, classbench, restore_text
from bpfilter.ir import Table

ALL_SIZES = (10, 1000, 10000, 100000)
QUICK_SIZES = (10, 1000)
GENERATORS = {"classbench": classbench, "blocklist": blocklist}


def sizes(config: pytest.Config) -> tuple[int, ...]:
    env = os.environ.get("BENCH_SIZES")
    if env:
        return tuple(int(x) for x in env.split(","))
    return QUICK_SIZES if config.getoption("benchmark_disable") else ALL_SIZES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "n_rules" in metafunc.fixturenames:
        metafunc.parametrize("n_rules", sizes(metafunc.config))
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize("kind", list(GENERATORS))


@cache
def rules(kind: str, n: int) -> list[Rule5]:
    return GENERATORS[kind](n)


@cache
def text(kind: str, n: int) -> str:
    return restore_text(rules(kind, n))


@cache
def table(kind: str, n: int) -> Table:
    return parse_table(text(kind, n))


@pytest.fixture(scope="session")
def bench_lab() -> Iterator[Lab]:
    from tests.kernel_required import bpf_available, require_kernel

    ok, why = bpf_available()
    require_kernel(ok, why)
    with lab() as lb:
        yield lb
