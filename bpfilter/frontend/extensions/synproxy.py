"""SYNPROXY target (libxt_SYNPROXY.c): answers SYNs with cookies for a backend.

Values: ``sack-perm``, ``timestamp``, ``ecn`` True; ``wscale`` (kept to 8 bits)
and ``mss`` (kept to 16 bits) ints, truncated as the kernel structure does.
Kernel: ``-p tcp`` (not negated), reachable only from INPUT and FORWARD.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import FORWARD, INPUT, IPPROTO_TCP, KernelPlaced
from bpfilter.frontend.extensions.types import UINT32_MAX, try_number


def _uint(opt: str, bits: int):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        v = try_number(args[0], 0, UINT32_MAX)
        if v is None:
            raise ExtensionError(
                f'SYNPROXY: bad value for option "--{opt}", or out of range (0-{UINT32_MAX}).'
            )
        return v & ((1 << bits) - 1)

    return parse


@register
class SYNPROXY(KernelPlaced):
    name = "SYNPROXY"
    kind = "target"
    valid_hooks = frozenset({INPUT, FORWARD})
    valid_protocols = frozenset({IPPROTO_TCP})
    options = (
        OptionSpec("sack-perm"),
        OptionSpec("timestamp"),
        OptionSpec("wscale", _uint("wscale", 8)),
        OptionSpec("mss", _uint("mss", 16)),
        OptionSpec("ecn"),
    )
