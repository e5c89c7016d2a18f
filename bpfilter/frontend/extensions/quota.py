"""``-m quota --quota BYTES`` (xt_quota): match until a byte budget is spent.

Value: ``quota`` is an int (bytes, 0 to 2**64-1); ``!`` inverts the match.
The budget is state the kernel keeps per rule: a BPF backend needs a map for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import Extension, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.types import UINT64_MAX, parse_uint
from bpfilter.ir import Option


@register
class QuotaMatch(Extension):
    """Byte quota; mandatory ``--quota``."""

    name = "quota"
    kind = "match"
    options = (
        OptionSpec("quota", lambda a, c: parse_uint(a[0], UINT64_MAX, "quota", "quota"),
                   invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "quota", "quota")
        return super().finalize(options, ctx)
