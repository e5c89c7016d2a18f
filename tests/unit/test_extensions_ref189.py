"""Extension edge cases replayed against what iptables-legacy 1.8.9 did with them.

``data/extensions_ref189.tsv`` holds one rule per line with what the real
iptables-legacy 1.8.9 saved for it (recorded in a private network namespace by
``python -m tests.unit.extensions_ref189_oracle``). Each rule goes through the
whole frontend (restore parser, extension finalize, COMMIT's kernel checks,
printer) and must print exactly as 1.8.9 printed it, or be refused when 1.8.9
refused it. The rows cover quirks the corpus .t files do not: abbreviations,
service names, value truncation, option order, kernel table/hook/protocol checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from bpfilter.ir import BUILTIN_CHAINS, Family

DATA = Path(__file__).parent / "data" / "extensions_ref189.tsv"

# 1.8.9 refused these because of this machine's state, not the text: we accept them.
STATE_DEPENDENT = {
    "-m bpf --object-pinned /nonexistent":
        "iptables opens the pinned object while parsing; the path is checked when loading",
    "-m nfacct --nfacct-name 0123456789012345678901234567890123":
        "the kernel refuses names with no nfacct object; that is kernel state",
}


def _cases() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for line in DATA.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fam, table, chain, rule, printed = line.split("\t")
        rows.append((fam, table, chain, rule, printed))
    return rows


CASES = _cases()


def run(fam: str, table: str, chain: str, rule: str) -> str:
    """What the frontend prints after ``-A CHAIN`` for ``rule``, or FAIL when it refuses."""
    family = Family.IPV6 if fam == "6" else Family.IPV4
    decl = "" if chain in BUILTIN_CHAINS.get(table, ()) else f":{chain} - [0:0]\n"
    text = f"*{table}\n{decl}-A {chain} {rule}\nCOMMIT\n"
    try:
        rs = parse_restore(text, family=family, filename="case")
    except RestoreError:
        return "FAIL"
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None and len(c.rules) == 1
    return print_rule(c.rules[0], chain, family, table=table).removeprefix(f"-A {chain}").lstrip()


@pytest.mark.parametrize(("fam", "table", "chain", "rule", "printed"), CASES,
                         ids=[f"{c[0]}:{c[1]}:{c[2]}:{c[3]}" for c in CASES])
def test_as_iptables_189(fam: str, table: str, chain: str, rule: str, printed: str) -> None:
    if rule in STATE_DEPENDENT:
        assert printed == "FAIL"
        assert run(fam, table, chain, rule).startswith(rule.split(" --")[0])
        return
    assert run(fam, table, chain, rule) == printed


def test_cases_cover_both_outcomes() -> None:
    outcomes = {p == "FAIL" for *_, p in CASES}
    assert outcomes == {True, False}
