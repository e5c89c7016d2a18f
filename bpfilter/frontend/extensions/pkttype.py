"""``-m pkttype`` (libxt_pkttype, kernel xt_pkttype): link-layer packet class.

Value: ``pkt-type``: the kernel's PACKET_* number (0 unicast/host,
1 broadcast, 2 multicast, 3 otherhost), negatable.
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
from bpfilter.ir import Option

# (name, PACKET_*), printable names first: save prints the first name of a value.
TYPES = (("unicast", 0), ("broadcast", 1), ("multicast", 2), ("otherhost", 3),
         ("bcast", 1), ("mcast", 2), ("host", 0))


def _type(args: Sequence[str], ctx: ParseContext) -> int:
    for name, value in TYPES:
        if name.lower() == args[0].lower():
            return value
    raise ExtensionError(f"Bad packet type '{args[0]}'")


@register
class PkttypeMatch(Extension):
    name = "pkttype"
    kind = "match"
    options = (OptionSpec("pkt-type", _type, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('pkttype: option "--pkt-type" must be specified')
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return next(n for n, v in TYPES if v == opt.value)
