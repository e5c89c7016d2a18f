"""``-m multiport --sports|--dports|--ports LIST`` (libxt_multiport rev 1).

Value: ``tuple[PortRange, ...]`` in the given order (a single port has
lo == hi). Up to 15 slots, a range takes two. Needs ``-p`` tcp, udp,
udplite, sctp or dccp before the option (service names use that protocol).
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
from bpfilter.frontend.extensions.types import PortRange, format_port_range, parse_port
from bpfilter.ir import Option

PROTOS = {6: "tcp", 17: "udp", 136: "udplite", 132: "sctp", 33: "dccp"}
XT_MULTI_PORTS = 15


def _proto_name(ctx: ParseContext) -> str:
    p = ctx.protocol
    if p is not None and p.negated:
        raise ExtensionError("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
    num = p.value if p is not None else 0
    if num in PROTOS:
        return PROTOS[num]
    if not num:
        raise ExtensionError("multiport needs `-p tcp', `-p udp', `-p udplite', "
                             "`-p sctp' or `-p dccp'")
    raise ExtensionError("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")


def parse_ports(args: Sequence[str], ctx: ParseContext) -> tuple[PortRange, ...]:
    """parse_multi_ports_v1."""
    proto = _proto_name(ctx)
    out: list[PortRange] = []
    slots = 0
    parts = args[0].split(",")
    for idx, part in enumerate(parts):
        if slots >= XT_MULTI_PORTS:
            raise ExtensionError("too many ports specified")
        lo_s, colon, hi_s = part.partition(":")
        if colon and slots == XT_MULTI_PORTS - 1:
            raise ExtensionError("too many ports specified")
        lo = parse_port(lo_s, proto)
        if colon:
            hi = parse_port(hi_s, proto)
            if lo >= hi:
                raise ExtensionError("invalid portrange specified")
            out.append(PortRange(lo, hi))
            slots += 2
        else:
            out.append(PortRange(lo, lo))
            slots += 1
        del idx
    return tuple(out)


@register
class MultiportMatch(Extension):
    """Up to 15 ports/ranges on source, destination or either."""

    name = "multiport"
    kind = "match"
    options = (
        OptionSpec("sports", parse_ports, invert=True, aliases=("source-ports",)),
        OptionSpec("dports", parse_ports, invert=True, aliases=("destination-ports",)),
        OptionSpec("ports", parse_ports, invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if len(options) > 1:
            raise ExtensionError("multiport can only have one option")
        if not options:
            raise ExtensionError("multiport expects an option")
        _proto_name(ctx)
        return tuple(options)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(
            f"{'! ' if o.negated else ''}--{o.name} "
            + ",".join(format_port_range(p) for p in o.value)
            for o in options
        )
