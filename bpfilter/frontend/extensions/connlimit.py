"""``-m connlimit`` (libxt_connlimit revision 1, kernel xt_connlimit).

Values after finalize: ``connlimit-above`` or ``connlimit-upto`` (int limit;
``! --connlimit-upto`` is ``--connlimit-above``); ``connlimit-mask``: prefix
length grouping addresses (default full); ``connlimit-saddr`` or
``connlimit-daddr``: True, which address is grouped (default saddr).
Matches when the group's connection count is above (or at most) the limit.
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
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint, try_number
from bpfilter.frontend.netparse import mask_to_cidr, parse_host
from bpfilter.ir import Option


def _limit(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "connlimit", "connlimit-above")


def _mask(args: Sequence[str], ctx: ParseContext) -> int:
    """XTTYPE_PLENMASK as 1.8.9: a prefix length, else an address taken as a mask.

    IPv4 reads the address with inet_aton, so ``129`` is the mask 0.0.0.129; a
    mask that is not contiguous counts as the full mask, as 1.8.9 does.
    """
    n = try_number(args[0], 0, ctx.family.bits)
    if n is not None:
        return n
    mask = parse_host(args[0], ctx.family)
    if mask is None:
        raise ExtensionError(
            f'connlimit: bad value for option "--connlimit-mask", neither a valid network '
            f"mask nor valid CIDR (0-{ctx.family.bits})."
        )
    cidr = mask_to_cidr(mask)
    return ctx.family.bits if cidr is None else cidr


@register
class ConnlimitMatch(Extension):
    """Number of connections per address group, above or up to a limit."""

    name = "connlimit"
    kind = "match"
    options = (
        OptionSpec("connlimit-upto", _limit, invert=True),
        OptionSpec("connlimit-above", _limit, invert=True),
        OptionSpec("connlimit-mask", _mask),
        OptionSpec("connlimit-saddr"),
        OptionSpec("connlimit-daddr"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        for a, b in (("connlimit-upto", "connlimit-above"), ("connlimit-saddr", "connlimit-daddr")):
            if a in found and b in found:
                first, second = (a, b) if options.index(found[a]) < options.index(found[b]) \
                    else (b, a)
                raise ExtensionError(f'connlimit: option "--{second}" cannot be used together '
                                     f'with "--{first}".')
        lim = found.get("connlimit-upto") or found.get("connlimit-above")
        if lim is None:
            raise ExtensionError(
                'connlimit: You must specify "--connlimit-above" or "--connlimit-upto".'
            )
        above = (lim.name == "connlimit-above") != lim.negated
        mask = found["connlimit-mask"].value if "connlimit-mask" in found else ctx.family.bits
        side = "connlimit-daddr" if "connlimit-daddr" in found else "connlimit-saddr"
        return (
            Option("connlimit-above" if above else "connlimit-upto", lim.value),
            Option("connlimit-mask", mask),
            Option(side, True),
        )
