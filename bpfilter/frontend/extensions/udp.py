"""``-m udp`` (also loaded by ``-p udp``): ports (libxt_udp, xt_udp).

Values: ``sport``/``dport`` are ``PortRange`` (1.8.9 accepts lo > hi here,
which matches no packet, unlike tcp which refuses it).
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import Extension, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import require_protocol
from bpfilter.frontend.extensions.types import PortRange, parse_port, save_ports
from bpfilter.ir import Option


def _ports(args: Sequence[str], ctx: ParseContext) -> PortRange:
    """XTTYPE_PORTRC as 1.8.9 has it: like tcp's ranges but lo > hi is accepted."""
    text = args[0]
    if ":" not in text:
        p = parse_port(text, "udp")
        return PortRange(p, p)
    a, b = text.split(":", 1)
    return PortRange(parse_port(a, "udp") if a else 0, parse_port(b, "udp") if b else 0xFFFF)


@register
class UdpMatch(Extension):
    """UDP ports; the kernel wants ``-p udp`` (not negated)."""

    name = "udp"
    kind = "match"
    options = (
        OptionSpec("sport", _ports, invert=True, aliases=("source-port",)),
        OptionSpec("dport", _ports, invert=True, aliases=("destination-port",)),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        require_protocol(ctx, 17, "udp match")
        return super().finalize(options, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(t for o in options if (t := save_ports(o, o.name)))
