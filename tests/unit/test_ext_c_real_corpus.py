"""Every rule of the real-world corpus that uses a group-C match parses and prints back.

Each such line is restored on its own (its table, its chain declared) through
the full frontend, and must print exactly as written (the files are
iptables-save output, so the text is already canonical).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.extensions.base import match_extension
from bpfilter.ir import BUILTIN_CHAINS, Family

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "real"
GROUP_C = ("ah", "esp", "ipcomp", "sctp", "dccp", "time", "quota", "nfacct", "cpu", "cgroup",
           "cluster", "connbytes", "connlabel", "bpf", "helper", "ipvs", "policy", "realm",
           "osf", "rpfilter", "socket", "ipv6header", "frag", "hbh", "dst", "rt", "mh",
           "eui64", "srh", "string", "u32", "owner", "physdev", "devgroup")
_USES = re.compile(r"(?:^|\s)-m (" + "|".join(GROUP_C) + r")(?:\s|$)")


def _family(path: Path) -> Family:
    return Family.IPV6 if re.search(r"(v6|6\.rules|ipv6)", path.name) else Family.IPV4


def _cases():
    if not CORPUS.exists():
        return
    for path in sorted(CORPUS.iterdir()):
        table = "filter"
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith("-A ") and _USES.search(line):
                yield pytest.param(path, lineno, table, line.rstrip(),
                                   id=f"{path.name}:{lineno}")


CASES = list(_cases())


@pytest.mark.skipif(not CORPUS.exists(), reason="corpus ../shared/corpus not present")
def test_corpus_has_group_c_uses():
    assert CASES, "the corpus should contain sctp and rt uses"


@pytest.mark.skipif(not CORPUS.exists(), reason="corpus ../shared/corpus not present")
@pytest.mark.parametrize("path,lineno,table,line", CASES)
def test_real_line_round_trips(path, lineno, table, line):
    parser = pytest.importorskip("bpfilter.frontend.parser")
    printer = pytest.importorskip("bpfilter.frontend.printer")
    fam = _family(path)
    for name in _USES.findall(line):
        assert match_extension(name, fam) is not None, name
    chain = line.split()[1]
    decl = [f":{c} ACCEPT [0:0]" for c in BUILTIN_CHAINS[table]]
    if chain not in BUILTIN_CHAINS[table]:
        decl.append(f":{chain} - [0:0]")
    # Jump targets that are user chains must exist too.
    target = re.search(r"\s-[jg] (\S+)", line)
    if target and re.fullmatch(r"[a-z0-9_-]+", target.group(1)) and target.group(1) != chain:
        decl.append(f":{target.group(1)} - [0:0]")
    text = "\n".join([f"*{table}", *decl, line, "COMMIT", ""])
    try:
        rs = parser.parse_restore(text, family=fam, filename=f"{path.name}:{lineno}")
    except RestoreError as e:
        if "Couldn't load" in e.message and not any(n in e.message for n in _USES.findall(line)):
            pytest.skip(f"another group's extension is missing: {e.message}")
        raise
    t = rs.table(table)
    assert t is not None
    rule = t.chain(chain).rules[0]
    assert printer.print_rule(rule, chain, fam, table=table) == line
