"""Real rulesets (``../shared/corpus/real``) through the extensions, via the whole frontend.

Every ``-A`` line that uses one of the extensions below is restored on its own
(its table; its chain and jump-target chains declared), printed, and restored
again: the printed text must read back to the same rule and print the same
(a fixed point). Where the file is iptables-save's own output for those
extensions, the text must also come back as written: whole lines for the
IPsec / IPv6-header / meta matches, the ``-m NAME ...`` / ``-j NAME ...`` part
for the nat/mangle/raw targets (the rest of those lines is not always canonical).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bpfilter.frontend.extensions.base import target_extension
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from bpfilter.ir import BUILTIN_CHAINS, STANDARD_VERDICTS, Family, Rule

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "real"

# Conntrack, rate limits, marks, LOG...: lines must be fixed points.
STATE_MATCHES = {"conntrack", "state", "limit", "hashlimit", "addrtype", "set", "mark",
                 "connmark", "recent", "statistic", "connlimit", "iprange", "length", "mac",
                 "pkttype", "ttl", "hl", "tcpmss"}
STATE_TARGETS = {"LOG", "NFLOG", "NFQUEUE", "REJECT", "SET", "MARK", "CONNMARK", "TTL", "HL",
                 "TCPMSS"}
# nat/mangle/raw targets and their matches: their part prints back as written.
NAT_MANGLE_TARGETS = set(
    "DNAT SNAT MASQUERADE REDIRECT NETMAP CT NOTRACK TRACE TOS DSCP ECN CLASSIFY CHECKSUM "
    "TEE TPROXY AUDIT CONNSECMARK SECMARK IDLETIMER LED HMARK RATEEST SYNPROXY TCPOPTSTRIP "
    "DNPT SNPT".split())
NAT_MANGLE_MATCHES = {"tos", "dscp", "ecn", "rateest"}
# IPsec, IPv6 headers, meta matches: the whole line prints back as written.
META_MATCHES = {"ah", "esp", "ipcomp", "sctp", "dccp", "time", "quota", "nfacct", "cpu",
                "cgroup", "cluster", "connbytes", "connlabel", "bpf", "helper", "ipvs",
                "policy", "realm", "osf", "rpfilter", "socket", "ipv6header", "frag", "hbh",
                "dst", "rt", "mh", "eui64", "srh", "string", "u32", "owner", "physdev",
                "devgroup"}
_META_USE = re.compile(r"(?:^|\s)-m (" + "|".join(sorted(META_MATCHES)) + r")(?:\s|$)")


def _family(name: str) -> Family:
    return Family.IPV6 if re.search(r"(v6|6\.rules|ipv6)", name) else Family.IPV4


def _lines() -> list[tuple[str, int, Family, str, str]]:
    """(file, line number, family, table, line) of every -A line using those extensions."""
    out: list[tuple[str, int, Family, str, str]] = []
    if not REAL.is_dir():
        return out
    for path in sorted(REAL.iterdir()):
        if path.name.startswith("NEG-"):
            continue
        table = "filter"
        for n, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.strip()
            if line.startswith("*"):
                table = line[1:].strip()
            if not line.startswith("-A "):
                continue
            words = shlex.split(line)
            mods = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-m", "--match")}
            tgts = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "--jump")}
            if (mods & (STATE_MATCHES | NAT_MANGLE_MATCHES | META_MATCHES)
                    or tgts & (STATE_TARGETS | NAT_MANGLE_TARGETS)):
                out.append((path.name, n, _family(path.name), table, line))
    return out


LINES = _lines()
META_LINES = [c for c in LINES if _META_USE.search(c[4])]
_USE = re.compile(r"(?:^|\s)(-j|-m)\s+(\S+)")
NAT_MANGLE_USES = [
    (*c, flag, name) for c in LINES for flag, name in _USE.findall(c[4])
    if (flag == "-j" and name in NAT_MANGLE_TARGETS)
    or (flag == "-m" and name in NAT_MANGLE_MATCHES)
]


def restore(fam: Family, table: str, line: str) -> tuple[Rule, str]:
    """The rule of ``line`` restored on its own, and how it prints."""
    words = shlex.split(line)
    chain = words[1]
    jumps = {words[i + 1] for i, w in enumerate(words[:-1])
             if w in ("-j", "-g", "--jump", "--goto")}
    chains = {j for j in jumps if j not in STANDARD_VERDICTS and target_extension(j, fam) is None}
    decl = "".join(f":{c} - [0:0]\n"
                   for c in sorted(({chain} | chains) - set(BUILTIN_CHAINS.get(table, ()))))
    rs = parse_restore(f"*{table}\n{decl}{line}\nCOMMIT\n", family=fam, filename="corpus")
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None and len(c.rules) == 1
    return c.rules[0], print_rule(c.rules[0], chain, fam, table=table)


def _part(line: str, flag: str, name: str) -> str:
    """``flag name`` and the words after it up to the next -m/-j."""
    tokens = shlex.split(line, posix=False)
    for i in range(len(tokens) - 1):
        if tokens[i] == flag and tokens[i + 1] == name:
            seg = [flag, name]
            for t in tokens[i + 2:]:
                if t in ("-m", "-j", "--match", "--jump"):
                    break
                seg.append(t)
            return " ".join(seg)
    raise AssertionError(f"{flag} {name} not in {line!r}")


@pytest.mark.skipif(not LINES, reason="corpus ../shared/corpus/real not found")
@pytest.mark.parametrize(("name", "lineno", "fam", "table", "line"), LINES,
                         ids=[f"{c[0]}:{c[1]}" for c in LINES])
def test_line_is_a_fixed_point(name: str, lineno: int, fam: Family, table: str,
                               line: str) -> None:
    rule, printed = restore(fam, table, line)
    again, printed2 = restore(fam, table, printed)
    assert again == rule
    assert printed2 == printed


@pytest.mark.skipif(not META_LINES, reason="corpus ../shared/corpus/real not found")
@pytest.mark.parametrize(("name", "lineno", "fam", "table", "line"), META_LINES,
                         ids=[f"{c[0]}:{c[1]}" for c in META_LINES])
def test_meta_match_line_prints_as_written(name: str, lineno: int, fam: Family, table: str,
                                           line: str) -> None:
    assert restore(fam, table, line)[1] == line


@pytest.mark.skipif(not NAT_MANGLE_USES, reason="corpus ../shared/corpus/real not found")
@pytest.mark.parametrize(("name", "lineno", "fam", "table", "line", "flag", "ext"),
                         NAT_MANGLE_USES,
                         ids=[f"{c[0]}:{c[1]}:{c[6]}" for c in NAT_MANGLE_USES])
def test_nat_mangle_part_prints_as_written(name: str, lineno: int, fam: Family, table: str,
                                           line: str, flag: str, ext: str) -> None:
    printed = restore(fam, table, line)[1]
    assert _part(printed, flag, ext) == _part(line, flag, ext)


def test_corpus_has_extension_lines() -> None:
    if not LINES:
        pytest.skip("corpus ../shared/corpus/real not found")
    assert len(LINES) > 100
    assert META_LINES, "the corpus should contain sctp and rt uses"
    assert NAT_MANGLE_USES
