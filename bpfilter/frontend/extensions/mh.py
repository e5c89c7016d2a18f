"""``-m mh --mh-type TYPE[:TYPE]`` (ip6t_mh): the IPv6 Mobility Header type.

Value: ``mh-type`` is a ``NumRange`` of 0-255 (absent = any; a negated full
range is kept but, like 1.8.9, not printed). Names as libip6t_mh: a unique
prefix of a name or an exact alias. The kernel needs ``-p mobility-header``.
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
from bpfilter.frontend.extensions.options import without_default
from bpfilter.frontend.extensions.placement import require_protocol
from bpfilter.frontend.extensions.types import UINT8_MAX, NumRange, try_number
from bpfilter.ir import Family, Option

IPPROTO_MH = 135
FULL = NumRange(0, UINT8_MAX)
NAMES = (
    ("binding-refresh-request", 0), ("brr", 0), ("home-test-init", 1), ("hoti", 1),
    ("careof-test-init", 2), ("coti", 2), ("home-test", 3), ("hot", 3), ("careof-test", 4),
    ("cot", 4), ("binding-update", 5), ("bu", 5), ("binding-acknowledgement", 6), ("ba", 6),
    ("binding-error", 7), ("be", 7),
)


def name_to_type(name: str) -> int:
    """libip6t_mh name_to_type: first prefix match, unless an exact one exists."""
    match = None
    for full, num in NAMES:
        if full.lower().startswith(name.lower()):
            if match is None or len(full) == len(name):
                match = num
    if match is not None:
        return match
    v = try_number(name, 0, UINT8_MAX)
    if v is None:
        raise ExtensionError(f"Invalid MH type `{name}'")
    return v


def parse_types(args: Sequence[str], ctx: ParseContext) -> NumRange:
    text = args[0]
    if ":" not in text:
        t = name_to_type(text)
        return NumRange(t, t)
    a, b = text.split(":", 1)
    lo = name_to_type(a) if a else 0
    hi = name_to_type(b) if b else UINT8_MAX
    if lo > hi:
        raise ExtensionError("Invalid MH type range (min > max)")
    return NumRange(lo, hi)


@register
class MhMatch(Extension):
    """Mobility header type match."""

    name = "mh"
    kind = "match"
    families = frozenset({Family.IPV6})
    options = (OptionSpec("mh-type", parse_types, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        require_protocol(ctx, IPPROTO_MH, "mh match")
        kept = without_default(options, "mh-type", FULL)
        return super().finalize(kept, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(("! " if o.negated else "") + f"--mh-type {o.value}"
                        for o in options if o.value != FULL)
