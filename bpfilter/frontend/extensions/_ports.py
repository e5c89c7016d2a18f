"""Shared bits of the port matches H1 owns (tcp, udp, multiport)."""

from __future__ import annotations

from bpfilter.frontend.extensions.base import ExtensionError, ParseContext
from bpfilter.frontend.extensions.types import PortRange, format_port_range
from bpfilter.ir import Family, Option


def require_proto(ctx: ParseContext, proto: int, name: str) -> None:
    """Kernel xt_check_match: ``.proto`` set means -p of it, not negated."""
    p = ctx.protocol
    if p is None or p.value != proto or p.negated:
        fam = "ip6" if ctx.family is Family.IPV6 else "ip"
        raise ExtensionError(f"{fam}_tables: {name} match: only valid for protocol {proto}")


def save_ports(opt: Option, flag: str) -> str | None:
    """tcp/udp save: nothing for the full range (even negated), else [! ]--flag lo[:hi]."""
    pr: PortRange = opt.value
    if pr.lo == 0 and pr.hi == 0xFFFF:
        return None
    return f"{'! ' if opt.negated else ''}--{flag} {format_port_range(pr)}"
