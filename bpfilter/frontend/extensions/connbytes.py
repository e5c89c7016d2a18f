"""``-m connbytes`` (xt_connbytes): bytes/packets/average size a connection has seen.

Values: ``connbytes`` is a ``NumRange`` (``hi`` = 2**64-1 when open ended; a
``!`` inverts it, libxt_connbytes stores that as a swapped range);
``connbytes-mode`` is "packets", "bytes" or "avgpkt"; ``connbytes-dir`` is
"original", "reply" or "both". All three options are mandatory. Needs
conntrack accounting, so a BPF backend leaves it to netfilter.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions._xtc import by_name, must_have, parse_mint
from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.types import UINT64_MAX, NumRange
from bpfilter.ir import Option

MODES = ("packets", "bytes", "avgpkt")
DIRS = ("original", "reply", "both")


def _range(args: Sequence[str], ctx: ParseContext) -> NumRange:
    vals = parse_mint(args[0], UINT64_MAX, "connbytes", "connbytes")
    lo = vals[0]
    hi = vals[1] if len(vals) == 2 else UINT64_MAX
    if lo > hi:
        raise ExtensionError(f"{lo} should be less than {hi}")
    return NumRange(lo, hi)


def _choice(what: str, choices: tuple[str, ...]):
    def parse(args: Sequence[str], ctx: ParseContext) -> str:
        if args[0] not in choices:
            raise ExtensionError(f"Unknown --{what} `{args[0]}'")
        return args[0]

    return parse


@register
class ConnbytesMatch(Extension):
    """Connection accounting match."""

    name = "connbytes"
    kind = "match"
    options = (
        OptionSpec("connbytes", _range, invert=True),
        OptionSpec("connbytes-mode", _choice("connbytes-mode", MODES)),
        OptionSpec("connbytes-dir", _choice("connbytes-dir", DIRS)),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = by_name(options)
        for name in ("connbytes", "connbytes-mode", "connbytes-dir"):
            must_have(found, name, "connbytes")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        if isinstance(opt.value, NumRange):
            r = opt.value
            return str(r.lo) if r.hi == UINT64_MAX else f"{r.lo}:{r.hi}"
        return str(opt.value)
