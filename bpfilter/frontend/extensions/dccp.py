"""``-m dccp``: DCCP ports, packet types and options (xt_dccp), bound to ``-p dccp``.

Values: ``sport``/``dport`` are ``NumRange`` (parsed like libxtables 1.8.9's
XTTYPE_PORTRC: decimal truncated to 16 bits or a service name, and ``lo > hi``
accepted); ``dccp-types`` is a frozenset of DCCP packet type numbers
(REQUEST=0 ... INVALID=10); ``dccp-option`` an int 1-255.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import IPPROTO_DCCP, require_protocol
from bpfilter.frontend.extensions.types import parse_mport, parse_uint
from bpfilter.ir import Option

TYPES = ("REQUEST", "RESPONSE", "DATA", "ACK", "DATAACK", "CLOSEREQ", "CLOSE", "RESET",
         "SYNC", "SYNCACK", "INVALID")


def _parse_types(args: Sequence[str], ctx: ParseContext) -> frozenset[int]:
    out: set[int] = set()
    for tok in (t for t in args[0].split(",") if t):
        up = tok.upper()
        if up not in TYPES:
            raise ExtensionError(f"Unknown DCCP type `{tok}'")
        out.add(TYPES.index(up))
    return frozenset(out)


def _parse_option(args: Sequence[str], ctx: ParseContext) -> int:
    v = parse_uint(args[0], 255, "dccp", "dccp-option", lo=1)
    return v


@register
class DccpMatch(Extension):
    """DCCP header match; the kernel refuses it without ``-p dccp``."""

    name = "dccp"
    kind = "match"
    options = (
        OptionSpec("sport", lambda a, c: parse_mport(a[0], "dccp", "source-port"),
                   invert=True, aliases=("source-port",)),
        OptionSpec("dport", lambda a, c: parse_mport(a[0], "dccp", "destination-port"),
                   invert=True, aliases=("destination-port",)),
        OptionSpec("dccp-types", _parse_types, invert=True),
        OptionSpec("dccp-option", _parse_option, invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        require_protocol(ctx, IPPROTO_DCCP, "dccp match")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        if opt.name == "dccp-types":
            return ",".join(TYPES[t] for t in sorted(opt.value))
        if opt.name == "dccp-option":
            return str(opt.value)
        return str(opt.value)
