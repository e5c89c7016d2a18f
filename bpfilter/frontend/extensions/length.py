"""``-m length`` (libxt_length, kernel xt_length): layer-3 packet length.

Value: ``length``: ``NumRange`` of bytes (IPv4 total length; IPv6 payload
length + 40), negatable. 1.8.9 keeps a reversed range as written.
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
from bpfilter.frontend.extensions.types import UINT16_MAX, NumRange, parse_range_rc
from bpfilter.ir import Option


def _length(args: Sequence[str], ctx: ParseContext) -> NumRange:
    return parse_range_rc(args[0], UINT16_MAX, "length", "length")


@register
class LengthMatch(Extension):
    name = "length"
    kind = "match"
    options = (OptionSpec("length", _length, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('length: option "--length" must be specified')
        return super().finalize(options, ctx)
