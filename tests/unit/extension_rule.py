"""One rule restored through the whole frontend, for tests about extension values.

``restore_rule("-p esp -m esp --espspi 3:")`` gives the IR rule the restore
parser, the extension's finalize and COMMIT's kernel checks produce. A refusal
is raised as ExtensionError with iptables' message, so tests can match on it.
"""

from __future__ import annotations

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import BUILTIN_CHAINS, Family, Rule


def restore_rule(rule: str, family: Family = Family.IPV4, table: str = "filter",
                 chain: str = "INPUT") -> Rule:
    """``rule`` (an iptables-restore line after ``-A CHAIN``) as the frontend reads it."""
    decl = "" if chain in BUILTIN_CHAINS.get(table, ()) else f":{chain} - [0:0]\n"
    text = f"*{table}\n{decl}-A {chain} {rule}\nCOMMIT\n"
    try:
        rs = parse_restore(text, family=family, filename="rule")
    except RestoreError as e:
        raise ExtensionError(e.message) from e
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None and len(c.rules) == 1
    return c.rules[0]
