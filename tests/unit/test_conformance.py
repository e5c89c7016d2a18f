"""iptables' own extension tests (corpus .t files) through parser + printer.

OK lines must print the expected text, FAIL lines must be refused; where the
installed iptables-legacy 1.8.9 differs from the 1.8.13-dev expectation, the
documented ``KNOWN_EXCEPTIONS`` entry (1.8.9's own result) is the referee.
Files whose extension nobody implemented yet are skipped with that reason.
"""

from __future__ import annotations

import pytest

from bpfilter.frontend.extensions.base import match_extension, target_extension
from tests.unit.conformance_cases import case_files, load_cases
from tests.unit.conformance_report import check_case

FILES = case_files()


def _extension_name(filename: str) -> str:
    return filename.split("_", 1)[1].removesuffix(".t")


@pytest.mark.skipif(not FILES, reason="corpus ../shared/corpus not found")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_extension_file(path):
    name = _extension_name(path.name) if "_" in path.name else "standard"
    if match_extension(name) is None and target_extension(name) is None:
        pytest.skip(f"extension {name} not implemented yet")
    failures = []
    for case in load_cases(path):
        bad = check_case(case)
        if bad is not None:
            failures.append(f"line {case.lineno} [{case.key}] {case.args!r}: {bad}")
    assert not failures, f"{len(failures)} case(s) differ:\n" + "\n".join(failures[:40])


def test_corpus_present_or_skipped():
    """The runner finds the .t files when the corpus is there."""
    if not FILES:
        pytest.skip("corpus ../shared/corpus not found")
    assert any(p.name == "libxt_tcp.t" for p in FILES)
