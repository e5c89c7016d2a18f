"""``-m rpfilter`` (xt_rpfilter): reverse-path filter (is the source routable back?).

Flags: ``loose`` (any route back, not via the input interface),
``validmark`` (use the packet mark in the lookup), ``accept-local``
(local source addresses pass), ``invert``. The kernel allows it only in
the raw and mangle tables, PREROUTING hook.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import PREROUTING, KernelPlaced
from bpfilter.ir import Option


@register
class RpfilterMatch(KernelPlaced):
    """Reverse path match."""

    name = "rpfilter"
    kind = "match"
    valid_hooks = frozenset({PREROUTING})
    valid_tables = ("raw", "mangle")
    options = (OptionSpec("loose"), OptionSpec("validmark"), OptionSpec("accept-local"),
               OptionSpec("invert"))

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_placement(ctx)
        return super().finalize(options, ctx)
