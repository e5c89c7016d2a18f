"""Every use of a group-B extension in the real rulesets of ``../shared/corpus/real`` parses.

The corpus files are iptables-save dumps (or restore input written in the same
canonical form), so the extension's part of each rule must also print back
exactly as it stands in the file.
"""

from __future__ import annotations

import re
import shlex

import pytest

from bpfilter.ir import Family
from tests.unit.ext_b_harness import CORPUS, expected_part, run

REAL = CORPUS / "real"
TARGETS = (
    "DNAT SNAT MASQUERADE REDIRECT NETMAP CT NOTRACK TRACE TOS DSCP ECN CLASSIFY CHECKSUM "
    "TEE TPROXY AUDIT CONNSECMARK SECMARK IDLETIMER LED HMARK RATEEST SYNPROXY TCPOPTSTRIP "
    "DNPT SNPT"
).split()
MATCHES = ("tos", "dscp", "ecn", "rateest")
_USE = re.compile(r"(?:^|\s)(-j|-m)\s+(\S+)")


def _uses():
    if not REAL.exists():
        return
    for path in sorted(REAL.iterdir()):
        if path.name.startswith("NEG-"):
            continue
        fam = Family.IPV6 if re.search(r"(\.v6|6\.rules|ipv6)", path.name) else Family.IPV4
        table = "filter"
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if line.startswith("*"):
                table = line[1:]
                continue
            if not line.startswith("-A "):
                continue
            for flag, name in _USE.findall(line):
                if (flag == "-j" and name in TARGETS) or (flag == "-m" and name in MATCHES):
                    chain = shlex.split(line)[1]
                    kind = "target" if flag == "-j" else "match"
                    yield pytest.param(
                        kind, name, line, fam, table, chain, id=f"{path.name}:{n}:{name}"
                    )


USES = list(_uses())


@pytest.mark.skipif(not USES, reason="../shared/corpus/real not present")
@pytest.mark.parametrize("kind,name,line,family,table,chain", USES)
def test_corpus_use_parses_and_prints_back(kind, name, line, family, table, chain):
    got = run(kind, name, line, family, table, chain)
    assert got == expected_part(kind, name, line)
