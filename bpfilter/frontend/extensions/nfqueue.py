"""``-j NFQUEUE`` (libxt_NFQUEUE revision 3): hand the packet to a userspace queue.

Values after finalize: either ``queue-num`` (int) or ``queue-balance``
(``NumRange`` of queue numbers, spread by flow hash); flags ``queue-bypass``
(accept when no listener) and ``queue-cpu-fanout`` (pick the queue by CPU).
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
from bpfilter.frontend.extensions.options import exclusive
from bpfilter.frontend.extensions.types import UINT16_MAX, NumRange, parse_mint, parse_uint
from bpfilter.ir import Option


def _num(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT16_MAX, "NFQUEUE", "queue-num")


def _balance(args: Sequence[str], ctx: ParseContext) -> NumRange:
    vals = parse_mint(args[0], UINT16_MAX, "NFQUEUE", "queue-balance")
    if len(vals) != 2:
        raise ExtensionError(f'Bad range "{args[0]}"')
    lo, hi = vals
    if lo >= hi:
        raise ExtensionError(f"{lo} should be less than {hi}")
    if hi - lo + 1 > UINT16_MAX:  # queues_total is a u16 in the kernel struct
        raise ExtensionError("NFQUEUE: number of total queues is 0 (Invalid argument)")
    return NumRange(lo, hi)


@register
class NfqueueTarget(Extension):
    """Queue the packet to userspace (nfnetlink_queue) for a verdict."""

    name = "NFQUEUE"
    kind = "target"
    options = (
        OptionSpec("queue-num", _num),
        OptionSpec("queue-balance", _balance),
        OptionSpec("queue-bypass"),
        OptionSpec("queue-cpu-fanout"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        exclusive("NFQUEUE", found, "queue-num", "queue-balance")
        if "queue-cpu-fanout" in found and "queue-balance" not in found:
            raise ExtensionError(
                'NFQUEUE: option "--queue-cpu-fanout" also requires "--queue-balance".'
            )
        out = list(super().finalize(options, ctx))
        if "queue-balance" not in found and "queue-num" not in found:
            out.insert(0, Option("queue-num", 0))
        return tuple(out)

    def format_value(self, opt: Option) -> str:
        v = opt.value
        return f"{v.lo}:{v.hi}" if isinstance(v, NumRange) else str(v)
