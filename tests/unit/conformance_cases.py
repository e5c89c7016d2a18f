"""Cases of iptables' own extension tests (corpus iptables-tests/extensions/*.t).

Format (corpus README): ``:CHAIN,...`` sets chains, ``*table`` the table,
``ARGS;EXPECTED;OK|FAIL|NOMATCH[;NFT|LEGACY]`` is one case; ``=`` means the
rule prints as given. libxt_* run for IPv4 and IPv6, libipt_* IPv4 only,
libip6t_* IPv6 only; ebt/arpt files and NFT-only lines are out of scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bpfilter.ir import Family

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
EXTENSIONS = CORPUS / "iptables-tests" / "extensions"


@dataclass(frozen=True)
class Case:
    file: str
    lineno: int
    family: Family
    table: str
    chain: str
    args: str
    expected: str | None  # None for FAIL
    result: str  # OK, FAIL, NOMATCH

    @property
    def key(self) -> str:
        fam = "4" if self.family is Family.IPV4 else "6"
        return f"{self.file}:{self.lineno}:{fam}:{self.table}:{self.chain}"

    def restore_text(self) -> str:
        builtin = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
                   "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
                   "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
                   "raw": ("PREROUTING", "OUTPUT"),
                   "security": ("INPUT", "FORWARD", "OUTPUT")}[self.table]
        decl = "" if self.chain in builtin else f":{self.chain} - [0:0]\n"
        return f"*{self.table}\n{decl}-A {self.chain} {self.args}\nCOMMIT\n"


def families_of(name: str) -> tuple[Family, ...]:
    if name == "iptables.t":  # generic options, run by upstream with iptables only
        return (Family.IPV4,)
    if name.startswith("libxt_"):
        return (Family.IPV4, Family.IPV6)
    if name.startswith("libipt_"):
        return (Family.IPV4,)
    if name.startswith("libip6t_"):
        return (Family.IPV6,)
    return ()


def case_files() -> list[Path]:
    if not EXTENSIONS.is_dir():
        return []
    return sorted(p for p in EXTENSIONS.glob("*.t") if families_of(p.name))


def load_cases(path: Path) -> list[Case]:
    """Every in-scope case of one .t file, one per (family, chain)."""
    out: list[Case] = []
    chains = ["INPUT"]
    table = "filter"
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            chains = [c for c in line[1:].split(",") if c]
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        fields = line.split(";")
        if len(fields) < 3:
            continue
        args, expected, result = fields[0], fields[1], fields[2]
        backend = fields[3] if len(fields) > 3 else ""
        if backend == "NFT":
            continue
        if result == "OK" and expected == "=":
            expected = args
        for fam in families_of(path.name):
            for chain in chains:
                out.append(Case(path.name, lineno, fam, table, chain, args,
                                expected if result != "FAIL" else None, result))
    return out
