"""compile_table with lookups: IR → LLVM → ELF → ProgramSpec + map contents."""

from __future__ import annotations

import pytest

from bench.conftest import table
from bpfilter.backend import compile_table
from bpfilter.ir import Family


@pytest.mark.parametrize("flavor", ["xdp", "nf"])
def test_compile(benchmark, kind: str, n_rules: int, flavor: str) -> None:
    t = table(kind, n_rules)
    progs = benchmark.pedantic(compile_table, args=(t, Family.IPV4, flavor), rounds=1)
    insns = max(p.program.insn_count for p in progs)
    benchmark.extra_info.update(insns=insns)
    assert insns < 4096  # the program stays small: the rules are in maps
