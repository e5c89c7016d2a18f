"""Group-B edge cases checked against the installed iptables-legacy 1.8.9.

Each row of ``data/ext_b_ref189.tsv`` was run through ``iptables-legacy -A`` +
``iptables-legacy-save`` in a private network namespace (the referee); the
last column is what 1.8.9 saved after ``-A CHAIN`` (``!REFUSED``: 1.8.9 or the
kernel refused the rule). The rows cover quirks the .t files do not: service
names in port ranges, shifted port maps, masks in dotted form, value
truncation, option replay order, kernel-only checks (tables, hooks, protocols,
ranges).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.ir import Family
from tests.unit.ext_b_harness import expected_part, run

DATA = Path(__file__).parent / "data" / "ext_b_ref189.tsv"


def _cases():
    for n, line in enumerate(DATA.read_text().splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        fam, table, chain, kind, name, args, expected = line.split("\t")
        yield pytest.param(int(fam), table, chain, kind, name, args, expected, id=f"row{n}")


@pytest.mark.parametrize("fam,table,chain,kind,name,args,expected", list(_cases()))
def test_matches_iptables_189(fam, table, chain, kind, name, args, expected):
    family = Family.IPV4 if fam == 4 else Family.IPV6
    if expected == "!REFUSED":
        with pytest.raises(ExtensionError):
            run(kind, name, args, family, table, chain)
    else:
        assert run(kind, name, args, family, table, chain) == expected_part(kind, name, expected)
