"""``-m frag`` (ip6t_frag): the IPv6 Fragment header.

Values: ``fragid`` ``NumRange`` of the 32-bit identification (absent = any;
a negated full range is kept but, like 1.8.9, not printed; 1.8.9 accepts
``lo > hi``); ``fraglen`` int (header length field, ``!`` allowed);
``fragres``, ``fragfirst``, ``fragmore``, ``fraglast``: flags (reserved bits
set, offset 0, M bit set, M bit clear). ``fragmore`` and ``fraglast`` exclude
each other.
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
from bpfilter.frontend.extensions.types import UINT32_MAX, NumRange, parse_range_rc, parse_uint
from bpfilter.ir import Family, Option

FULL = NumRange(0, UINT32_MAX)


@register
class FragMatch(Extension):
    """IPv6 fragment header match."""

    name = "frag"
    kind = "match"
    families = frozenset({Family.IPV6})
    options = (
        OptionSpec("fragid", lambda a, c: parse_range_rc(a[0], UINT32_MAX, "frag", "fragid"),
                   invert=True),
        OptionSpec("fraglen", lambda a, c: parse_uint(a[0], UINT32_MAX, "frag", "fraglen"),
                   invert=True),
        OptionSpec("fragres"),
        OptionSpec("fragfirst"),
        OptionSpec("fragmore"),
        OptionSpec("fraglast"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = [o.name for o in options]
        if "fragmore" in names and "fraglast" in names:
            first, second = sorted(("fragmore", "fraglast"), key=names.index)
            raise ExtensionError(
                f'frag: option "--{second}" cannot be used together with "--{first}".'
            )
        kept = without_default(options, "fragid", FULL)
        return super().finalize(kept, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            neg = "! " if o.negated else ""
            if o.name == "fragid":
                if o.value != FULL:
                    parts.append(f"{neg}--fragid {o.value}")
            elif o.name == "fraglen":
                parts.append(f"{neg}--fraglen {o.value}")
            else:
                parts.append(f"--{o.name}")
        return " ".join(parts)
