"""``-m eui64`` (ip6t_eui64): the source address's interface ID is the sender's EUI-64.

No options. The kernel checks it against the Ethernet source MAC, so it is
valid only where a MAC header exists: PREROUTING, INPUT and FORWARD.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ParseContext, register
from bpfilter.frontend.extensions.placement import FORWARD, INPUT, PREROUTING, KernelPlaced
from bpfilter.ir import Family, Option


@register
class Eui64Match(KernelPlaced):
    """EUI-64 source address check."""

    name = "eui64"
    kind = "match"
    families = frozenset({Family.IPV6})
    valid_hooks = frozenset({PREROUTING, INPUT, FORWARD})

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_placement(ctx)
        return super().finalize(options, ctx)
