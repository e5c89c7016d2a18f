"""Every real filter table of the shared corpus compiles and passes the verifier.

Rules the backend cannot compile are replaced by empty (count-only) rules so the
chain structure (jumps, gotos, user chains) stays as real firewalls have it.
Skips when ../shared/corpus is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfilter.backend import compile_table, unsupported_reason
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Chain, Family, Rule, Table
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "real"
FILES = sorted(p for p in CORPUS.glob("*.v4*") if not p.name.startswith("NEG")) \
    if CORPUS.is_dir() else []


def compilable(table: Table, flavor: str) -> Table:
    def keep(rule: Rule) -> Rule:
        return rule if unsupported_reason(rule, Family.IPV4, flavor) is None else Rule()

    return Table(table.name, tuple(Chain(c.name, c.policy, c.counters,
                                         tuple(keep(r) for r in c.rules))
                                   for c in table.chains))


@pytest.mark.skipif(not FILES, reason="../shared/corpus not present")
@pytest.mark.parametrize("flavor", ["nf", "tc"])
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_filter_table_verifies(path: Path, flavor: str) -> None:
    ok, why = bpf_available()
    require_kernel(ok, why)
    from bpfilter.verify.netns import Topology

    ruleset = parse_restore(path.read_text(), family=Family.IPV4, filename=path.name)
    table = ruleset.table("filter")
    if table is None:
        pytest.skip("no filter table")
    progs = compile_table(compilable(table, flavor), Family.IPV4, flavor)  # type: ignore[arg-type]
    def load() -> list[str]:
        with LoadedTable(progs) as lt:
            return sorted(lt.programs)

    with Topology("h7corp") as topo:
        topo.netns("a")
        hooks = topo.call("a", load)
    assert hooks == sorted(p.hook for p in progs)
