"""``-m realm --realm VALUE[/MASK]`` (xt_realm, IPv4): the route's realm (dst->tclassid).

Value: ``realm`` is a ``ValueMask``; names come from /etc/iproute2/rt_realms
and print back as names when the mask is full (as 1.8.9 does). ``!`` inverts.
The kernel allows it from INPUT, FORWARD, OUTPUT and POSTROUTING.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.placement import FORWARD, INPUT, OUTPUT, POSTROUTING, KernelPlaced
from bpfilter.frontend.extensions.types import ValueMask, format_val_mask_lmap, parse_val_mask_lmap
from bpfilter.ir import Family, Option

REALMS = "/etc/iproute2/rt_realms"


def _realm(args: Sequence[str], ctx: ParseContext) -> ValueMask:
    return ValueMask(*parse_val_mask_lmap(args[0], REALMS, "Realm"))


@register
class RealmMatch(KernelPlaced):
    """Routing realm match."""

    name = "realm"
    kind = "match"
    families = frozenset({Family.IPV4})
    valid_hooks = frozenset({INPUT, FORWARD, OUTPUT, POSTROUTING})
    options = (OptionSpec("realm", _realm, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "realm", "realm")
        self.check_placement(ctx)
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return format_val_mask_lmap(opt.value.value, opt.value.mask, REALMS)
