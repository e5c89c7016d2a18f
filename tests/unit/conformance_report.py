"""Run iptables' extension test cases through bpfilter's parser and printer.

``python -m tests.unit.conformance_report`` prints the share of passing
cases per .t file and overall (add ``-v`` to list the failures).
Cases where iptables 1.8.9 (the referee here) differs from the 1.8.13-dev
expectations are judged by ``conformance_exceptions.KNOWN_EXCEPTIONS``.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from tests.unit.conformance_cases import Case, case_files, load_cases
from tests.unit.conformance_exceptions import KNOWN_EXCEPTIONS


def run_case(case: Case) -> tuple[bool, list[str] | None, str]:
    """(accepted, printed lines after '-A CHAIN ', error text)."""
    try:
        rs = parse_restore(case.restore_text(), family=case.family, filename=case.file)
    except RestoreError as e:
        return False, None, e.message
    table = rs.table(case.table)
    assert table is not None
    chain = table.chain(case.chain)
    assert chain is not None
    pre = f"-A {case.chain}"
    lines = [print_rule(r, case.chain, case.family, table=case.table)[len(pre):].lstrip(" ")
             for r in chain.rules]
    return True, lines, ""


def expectation(case: Case) -> tuple[str, str | None, str]:
    """(result, expected text, why) after applying the 1.8.9 exceptions."""
    exc = KNOWN_EXCEPTIONS.get(case.key) or KNOWN_EXCEPTIONS.get(case.key.rsplit(":", 2)[0])
    if exc is not None:
        reason, result, text = exc
        if result == "ENV" and case.result != "FAIL":
            # 1.8.9 could not run it here (module or kernel object missing): judge by
            # the .t expectation. A FAIL there is about kernel state: not judged.
            return case.result, case.expected, ""
        return result, text, reason
    return case.result, case.expected, ""


def check_case(case: Case) -> str | None:
    """None when bpfilter behaves as expected, else a one-line reason."""
    result, expected, why = expectation(case)
    if result == "ENV":
        return None
    ok, lines, err = run_case(case)
    note = f" [1.8.9: {why}]" if why else ""
    if result == "FAIL":
        return None if not ok else f"accepted, printed {lines!r}, expected FAIL{note}"
    if not ok:
        return f"refused ({err}), expected {result}{note}"
    if result == "NOMATCH":
        return None
    if expected not in (lines or []):
        return f"printed {lines!r}, expected {expected!r}{note}"
    return None


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    total = passed = unjudged = 0
    per_file: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path in case_files():
        for case in load_cases(path):
            if expectation(case)[0] == "ENV":
                unjudged += 1
                continue
            bad = check_case(case)
            per_file[path.name][1] += 1
            total += 1
            if bad is None:
                per_file[path.name][0] += 1
                passed += 1
            elif verbose:
                print(f"  FAIL {case.key}: {case.args!r}: {bad}")
    for name, (ok, n) in sorted(per_file.items()):
        print(f"{name:32s} {ok:4d}/{n:<4d} {100 * ok / n:5.1f}%")
    if total:
        print(f"{'overall':32s} {passed:4d}/{total:<4d} {100 * passed / total:5.1f}%")
        print(f"not judged (need kernel state/modules absent here): {unjudged}")
    else:
        print("no cases: corpus not found")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
