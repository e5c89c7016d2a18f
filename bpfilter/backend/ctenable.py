"""Keep the kernel's connection tracker running in this network namespace while BPF
programs read conntrack state.

Why: since Linux 4.10 conntrack hooks are registered per namespace only while some
user holds them (nf_ct_netns_get): iptables' `-m conntrack`/`-m state` rules do it
when inserted. When those rules run as BPF instead, nothing would, and every packet
would read as INVALID. An nftables table of our own with one `ct state` rule in a
*non-base* chain (never evaluated: no per-packet cost) takes that reference, exactly
as the iptables rule would; deleting the table gives it back. Verified on 6.18: with
the table, /proc/net/nf_conntrack fills; without it, nothing is tracked.
The table is ours alone (`ip bpfilter_ct` / `ip6 bpfilter_ct`): no iptables or other
nftables state is touched.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from bpfilter.ir import Family, Table

TABLE = "bpfilter_ct"
CT_MODULES = frozenset({"conntrack", "state"})


def _nft_family(family: Family) -> str:
    return "ip6" if family is Family.IPV6 else "ip"


def needs_conntrack(tables: Iterable[Table]) -> bool:
    """Does any rule of these (BPF) tables read conntrack state?"""
    return any(m.module in CT_MODULES for t in tables for c in t.chains for r in c.rules
               for m in r.matches)


def _nft(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)


def enable(family: Family) -> None:
    """Hold conntrack for `family` in the current namespace (idempotent)."""
    f = _nft_family(family)
    proc = _nft(f"add table {f} {TABLE}\nadd chain {f} {TABLE} hold\n"
                f"flush chain {f} {TABLE} hold\nadd rule {f} {TABLE} hold ct state invalid\n")
    if proc.returncode != 0:
        raise OSError(f"enable conntrack (nft table {f} {TABLE}): {proc.stderr.strip()}")


def disable(family: Family) -> None:
    """Drop our hold on conntrack (no-op when we hold none)."""
    f = _nft_family(family)
    if subprocess.run(["nft", "list", "table", f, TABLE], capture_output=True).returncode == 0:
        _nft(f"delete table {f} {TABLE}\n")
