"""Group-A edge cases replayed against what iptables-legacy 1.8.9 did with them.

``data/ext_a_ref189.tsv`` was recorded from the real iptables-legacy-restore /
-save (``python -m tests.unit.ext_a_oracle``). Each rule must print exactly as
1.8.9 printed it, or be refused when 1.8.9 refused it. Set-existence cases
were recorded with the sets created, so they are judged like the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from bpfilter.ir import Family

DATA = Path(__file__).parent / "data" / "ext_a_ref189.tsv"


def _cases() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for line in DATA.read_text().splitlines():
        fam, table, chain, rule, printed = line.split("\t")
        rows.append((fam, table, chain, rule, printed))
    return rows


CASES = _cases()


def run(fam: str, table: str, chain: str, rule: str) -> str:
    family = Family.IPV6 if fam == "6" else Family.IPV4
    text = f"*{table}\n-A {chain} {rule}\nCOMMIT\n"
    try:
        rs = parse_restore(text, family=family, filename="case")
    except RestoreError:
        return "FAIL"
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None and len(c.rules) == 1
    return print_rule(c.rules[0], chain, family, table=table)


@pytest.mark.parametrize(("fam", "table", "chain", "rule", "printed"), CASES,
                         ids=[f"{c[0]}:{c[1]}:{c[2]}:{c[3]}" for c in CASES])
def test_as_iptables_189(fam: str, table: str, chain: str, rule: str, printed: str) -> None:
    assert run(fam, table, chain, rule) == printed


def test_cases_cover_both_outcomes() -> None:
    outcomes = {p == "FAIL" for *_, p in CASES}
    assert outcomes == {True, False}
