"""Group-B extensions against iptables' own ``extensions/*.t`` tests.

Every OK line must save exactly as iptables-legacy-save 1.8.9 prints it, every
FAIL line must be refused with an ExtensionError, on every chain and family the
file lists. Where the 1.8.13-dev expectations differ from the installed 1.8.9
(the referee), ``EXCEPTIONS`` holds what 1.8.9 does and why.
"""

from __future__ import annotations

import pytest

from bpfilter.frontend.extensions.base import ExtensionError
from tests.unit.ext_b_harness import TESTS_DIR, expected_part, load_cases, run, run_ir

# (.t name, kind, extension name as written after -j / -m)
EXTENSIONS = [
    ("DNAT", "target", "DNAT"),
    ("SNAT", "target", "SNAT"),
    ("MASQUERADE", "target", "MASQUERADE"),
    ("REDIRECT", "target", "REDIRECT"),
    ("NETMAP", "target", "NETMAP"),
    ("CT", "target", "CT"),
    ("NOTRACK", "target", "NOTRACK"),
    ("TRACE", "target", "TRACE"),
    ("TOS", "target", "TOS"),
    ("DSCP", "target", "DSCP"),
    ("ECN", "target", "ECN"),
    ("CLASSIFY", "target", "CLASSIFY"),
    ("CHECKSUM", "target", "CHECKSUM"),
    ("TEE", "target", "TEE"),
    ("TPROXY", "target", "TPROXY"),
    ("AUDIT", "target", "AUDIT"),
    ("CONNSECMARK", "target", "CONNSECMARK"),
    ("SECMARK", "target", "SECMARK"),
    ("IDLETIMER", "target", "IDLETIMER"),
    ("LED", "target", "LED"),
    ("HMARK", "target", "HMARK"),
    ("RATEEST", "target", "RATEEST"),
    ("SYNPROXY", "target", "SYNPROXY"),
    ("TCPOPTSTRIP", "target", "TCPOPTSTRIP"),
    ("DNPT", "target", "DNPT"),
    ("SNPT", "target", "SNPT"),
    ("tos", "match", "tos"),
    ("dscp", "match", "dscp"),
    ("ecn", "match", "ecn"),
    ("rateest", "match", "rateest"),
]

# (file, line) -> what 1.8.9 does instead ("OK:<text>" or "FAIL"), with the reason.
EXCEPTIONS: dict[tuple[str, int], tuple[str, str]] = {}


def _params():
    for tname, kind, ext in EXTENSIONS:
        for case in load_cases(tname):
            for fam in case.families:
                for chain in case.chains:
                    yield pytest.param(
                        kind, ext, case, fam, chain,
                        id=f"{case.file}:{case.line}:{fam.name}:{chain}",
                    )


pytestmark = pytest.mark.skipif(not TESTS_DIR.exists(), reason="../shared/corpus not present")


@pytest.mark.parametrize("kind,ext,case,family,chain", list(_params()))
def test_tfile_line(kind, ext, case, family, chain):
    result, expected = case.result, case.expected
    if (case.file, case.line) in EXCEPTIONS:
        override, _why = EXCEPTIONS[(case.file, case.line)]
        result, _, text = override.partition(":")
        expected = text or expected
    if result == "FAIL":
        with pytest.raises(ExtensionError):
            run(kind, ext, case.args, family, case.table, chain)
        return
    got = run(kind, ext, case.args, family, case.table, chain)
    assert got == expected_part(kind, ext, expected)
    # The printed text reads back to the same typed values (canonical form is stable).
    words = case.args.split()
    proto = ""
    if "-p" in words:
        i = words.index("-p")
        proto = " ".join(words[max(i - 1, 0) : i + 2]) if i and words[i - 1] == "!" else (
            f"-p {words[i + 1]}"
        )
    first = run_ir(kind, ext, case.args, family, case.table, chain)
    again = run_ir(kind, ext, f"{proto} {got}", family, case.table, chain)
    assert again == first
