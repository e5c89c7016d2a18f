"""``-m connbytes`` (xt_connbytes): bytes/packets/average size a connection has seen.

Values: ``connbytes`` is a ``NumRange`` (``hi`` = 2**64-1 when open ended; a
``!`` inverts it, the kernel keeps that as a swapped range, so it is lost
when lo == hi; 1.8.9 prints ``:hi`` only for 0 < hi < 2**64-1);
``connbytes-mode`` is "packets", "bytes" or "avgpkt"; ``connbytes-dir`` is
"original", "reply" or "both". All three options are mandatory. Needs
conntrack accounting, so a BPF backend leaves it to netfilter.
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
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.types import UINT64_MAX, NumRange, parse_mint
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
        rng = found["connbytes"]
        if rng.negated and rng.value.lo == rng.value.hi:
            # The kernel encodes "!" as a swapped range: a one-value range cannot be swapped,
            # so "! --connbytes N:N" means "== N" (and 1.8.9 prints it without "!").
            options = [Option(o.name, o.value) if o is rng else o for o in options]
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        if isinstance(opt.value, NumRange):
            # libxt_connbytes print_from_to: ":to" only for 0 < to < 2**64-1.
            r = opt.value
            return f"{r.lo}:{r.hi}" if 0 < r.hi < UINT64_MAX else str(r.lo)
        return str(opt.value)
