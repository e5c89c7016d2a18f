"""Real rulesets (../shared/corpus/real) through the group-A extensions.

Every ``-A`` line that uses a group-A match or target must parse; printing it
gives iptables-save's canonical text, which must read back to the same rule
and print the same again (a fixed point). (That the printed text is exactly
what iptables-legacy-save 1.8.9 prints for these lines was checked against the
real binary while writing the extensions; the corpus itself is not copied here.)
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from bpfilter.ir import BUILTIN_CHAINS, Family

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "real"
MATCHES = {"conntrack", "state", "limit", "hashlimit", "addrtype", "set", "mark", "connmark",
           "recent", "statistic", "connlimit", "iprange", "length", "mac", "pkttype", "ttl",
           "hl", "tcpmss"}
TARGETS = {"LOG", "NFLOG", "NFQUEUE", "REJECT", "SET", "MARK", "CONNMARK", "TTL", "HL",
           "TCPMSS"}
VERDICTS = TARGETS | {"ACCEPT", "DROP", "RETURN", "QUEUE", "DNAT", "SNAT", "MASQUERADE",
                      "REDIRECT", "NOTRACK", "CT", "CHECKSUM", "TOS", "DSCP", "CLASSIFY"}


def _lines() -> list[tuple[str, Family, str, str]]:
    out = []
    if not REAL.is_dir():
        return out
    for path in sorted(REAL.iterdir()):
        if path.name.startswith("NEG-"):
            continue
        fam = Family.IPV6 if any(k in path.name for k in ("v6", "6.rules", "ipv6")) \
            else Family.IPV4
        table = "filter"
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line.startswith("*"):
                table = line[1:]
            if not line.startswith("-A "):
                continue
            words = shlex.split(line)
            mods = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-m", "--match")}
            tgts = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "--jump")}
            if mods & MATCHES or tgts & TARGETS:
                out.append((path.name, fam, table, line))
    return out


LINES = _lines()


def _restore(fam: Family, table: str, line: str):
    words = shlex.split(line)
    chain = words[1]
    jumps = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g", "--jump",
                                                                       "--goto")}
    builtin = BUILTIN_CHAINS.get(table, ())
    decl = "".join(f":{c} - [0:0]\n" for c in sorted(({chain} | (jumps - VERDICTS)) - set(builtin)))
    rs = parse_restore(f"*{table}\n{decl}{line}\nCOMMIT\n", family=fam, filename="corpus")
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None and len(c.rules) == 1
    return c.rules[0], print_rule(c.rules[0], chain, fam, table=table)


@pytest.mark.skipif(not LINES, reason="corpus ../shared/corpus/real not found")
@pytest.mark.parametrize(("name", "fam", "table", "line"), LINES,
                         ids=[f"{n}:{line[:60]}" for n, _, _, line in LINES])
def test_real_line(name: str, fam: Family, table: str, line: str) -> None:
    rule, printed = _restore(fam, table, line)
    again, printed2 = _restore(fam, table, printed)
    assert again == rule
    assert printed2 == printed


def test_corpus_has_group_a_lines() -> None:
    if not LINES:
        pytest.skip("corpus ../shared/corpus/real not found")
    assert len(LINES) > 100
