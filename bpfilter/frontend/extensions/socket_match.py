"""``-m socket`` (xt_socket rev. 3): a local socket exists for the packet.

Flags: ``transparent`` (only IP_TRANSPARENT sockets), ``nowildcard`` (also
match sockets bound to 0.0.0.0/::), ``restore-skmark`` (copy the socket
mark to the packet). The kernel allows it in PREROUTING and INPUT only.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import INPUT, PREROUTING, KernelPlaced
from bpfilter.ir import Option


@register
class SocketMatch(KernelPlaced):
    """Socket lookup match."""

    name = "socket"
    kind = "match"
    valid_hooks = frozenset({PREROUTING, INPUT})
    options = (OptionSpec("transparent"), OptionSpec("nowildcard"),
               OptionSpec("restore-skmark"))

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_placement(ctx)
        return super().finalize(options, ctx)
