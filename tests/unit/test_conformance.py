"""iptables' own extension tests (corpus .t files) through parser + printer, case by case.

OK lines must print the expected text, FAIL lines must be refused; where the
installed iptables-legacy 1.8.9 differs from the 1.8.13-dev expectation, the
documented ``KNOWN_EXCEPTIONS`` entry (1.8.9's own result) is the referee.
Accepted lines must also be fixed points: the printed text restores to the
same rule. Cases whose extension nobody implemented are skipped with that reason.
"""

from __future__ import annotations

import pytest

from bpfilter.frontend.extensions.base import match_extension, target_extension
from bpfilter.frontend.parser import parse_restore
from tests.unit.conformance_cases import Case, case_files, load_cases
from tests.unit.conformance_report import check_case, expectation, run_case

FILES = case_files()
CASES = [case for path in FILES for case in load_cases(path)]

# OK lines whose 1.8.9 text means something else when restored again (lossy on purpose):
# for them only the text must be a fixed point, not the rule.
_ANY_IFACE = "'-i +' (any interface) prints as nothing"
_FULL_RANGE = "a full (or negated full) range prints as nothing"
LOSSY = {
    "iptables.t:7": _ANY_IFACE, "iptables.t:8": _ANY_IFACE,
    "libip6t_standard.t:7": _ANY_IFACE, "libip6t_standard.t:8": _ANY_IFACE,
    "libipt_standard.t:21": _ANY_IFACE, "libxt_standard.t:9": _ANY_IFACE,
    "iptables.t:13": "-c sets counters, which are not rule text",
    "libipt_icmp.t:13": "type 255 with code 255 prints as 'any' (all codes)",
    **{k: _FULL_RANGE for k in (
        "libxt_tcp.t:9", "libxt_tcp.t:10", "libxt_tcp.t:15", "libxt_tcp.t:16",
        "libxt_udp.t:9", "libxt_udp.t:10", "libxt_udp.t:15", "libxt_udp.t:16",
        "libipt_ah.t:15", "libip6t_ah.t:17", "libxt_esp.t:8",
        "libip6t_frag.t:3", "libip6t_rt.t:7", "libip6t_mh.t:8")},
}

# 1.8.9 text that does not even restore to itself: libxt_ipcomp has no default, so
# "-m ipcomp" alone means CPI 0 and prints "--ipcompspi 0".
NOT_FIXED_POINT = {
    "libxt_ipcomp.t:4": "'--ipcompspi :' (any) prints as nothing, which means CPI 0",
    "libxt_ipcomp.t:5": "'! --ipcompspi :' prints as nothing, which means CPI 0",
}

# Lines 1.8.9 could not judge here (kernel module or object missing, "ENV" in
# KNOWN_EXCEPTIONS) on which the text alone decides: (printed text, or None for
# refused; why).
JUDGED_HERE: dict[str, tuple[str | None, str]] = {
    "libxt_LED.t:2": (None, "--led-trigger-id is mandatory (libxt_LED), whatever the kernel has"),
    "libxt_nfacct.t:8": ("-m nfacct --nfacct-name  wrong",
                         "the kernel refuses a name with no nfacct object at COMMIT: that is "
                         "kernel state, not something the text can tell"),
}


def _extension_name(filename: str) -> str:
    return filename.split("_", 1)[1].removesuffix(".t") if "_" in filename else "standard"


def _skip_unimplemented(case: Case) -> None:
    name = _extension_name(case.file)
    if match_extension(name) is None and target_extension(name) is None:
        pytest.skip(f"extension {name} not implemented yet")


@pytest.mark.skipif(not FILES, reason="corpus ../shared/corpus not found")
@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_case(case: Case) -> None:
    _skip_unimplemented(case)
    judged = JUDGED_HERE.get(f"{case.file}:{case.lineno}")
    if judged is not None:
        ok, lines, err = run_case(case)
        if judged[0] is None:
            assert not ok, f"accepted, printed {lines!r}: {judged[1]}"
        else:
            assert ok and judged[0] in (lines or []), f"{lines!r} {err}: {judged[1]}"
        return
    bad = check_case(case)
    assert bad is None, f"{case.args!r}: {bad}"


ACCEPTED = [c for c in CASES if expectation(c)[0] == "OK"]


@pytest.mark.skipif(not FILES, reason="corpus ../shared/corpus not found")
@pytest.mark.parametrize("case", ACCEPTED, ids=[c.key for c in ACCEPTED])
def test_printed_text_restores_to_same_rule(case: Case) -> None:
    _skip_unimplemented(case)
    if f"{case.file}:{case.lineno}" in NOT_FIXED_POINT:
        pytest.skip(NOT_FIXED_POINT[f"{case.file}:{case.lineno}"])
    ok, lines, err = run_case(case)
    assert ok, err
    assert lines is not None
    rules = _rules(case)
    assert len(rules) == len(lines)
    lossy = f"{case.file}:{case.lineno}" in LOSSY
    for rule, text in zip(rules, lines, strict=True):
        printed = Case(case.file, case.lineno, case.family, case.table, case.chain, text,
                       text, "OK")
        again = _rules(printed)
        assert len(again) == 1
        if not lossy:
            assert again == [rule], text
        reprinted = run_case(printed)[1]
        assert reprinted == [text]


def _rules(case: Case) -> list:
    """The rules ``case`` restores to (several when addresses expand)."""
    rs = parse_restore(case.restore_text(), family=case.family, filename=case.file)
    table = rs.table(case.table)
    assert table is not None
    chain = table.chain(case.chain)
    assert chain is not None
    return list(chain.rules)


def test_corpus_present_or_skipped() -> None:
    """The runner finds the .t files when the corpus is there."""
    if not FILES:
        pytest.skip("corpus ../shared/corpus not found")
    assert any(p.name == "libxt_tcp.t" for p in FILES)
