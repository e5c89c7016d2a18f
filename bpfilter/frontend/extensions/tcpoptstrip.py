"""TCPOPTSTRIP target (libxt_TCPOPTSTRIP.c): removes TCP options.

Value: ``strip-options`` is a frozenset of TCP option kinds (2-255), given as
numbers or names (mss, wscale, sack-permitted, sack, timestamp, md5) and
printed as sorted numbers. Without it the target strips nothing and prints
no option. Kernel: ``-p tcp`` (not negated), mangle table.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import IPPROTO_TCP, KernelPlaced
from bpfilter.frontend.extensions.types import UINT8_MAX, try_number
from bpfilter.ir import Option

TCP_OPTION_NAMES = {
    "wscale": 3, "mss": 2, "sack-permitted": 4, "sack": 5, "timestamp": 8, "md5": 19,
}


def parse_strip_list(text: str) -> frozenset[int]:
    kinds: set[int] = set()
    for item in text.split(","):
        kind = TCP_OPTION_NAMES.get(item, 0)
        if kind == 0:
            v = try_number(item, 0, UINT8_MAX)
            if v is None:
                raise ExtensionError(f'Bad TCP option value "{item}"')
            kind = v
        if kind < 2:
            raise ExtensionError("Option value may not be 0 or 1")
        if kind in kinds:
            raise ExtensionError(f'Option "{item}" already specified')
        kinds.add(kind)
    return frozenset(kinds)


def _parse(args: Sequence[str], ctx: ParseContext) -> frozenset[int]:
    return parse_strip_list(args[0])


@register
class TCPOPTSTRIP(KernelPlaced):
    name = "TCPOPTSTRIP"
    kind = "target"
    valid_tables = ("mangle",)
    valid_protocols = frozenset({IPPROTO_TCP})
    options = (OptionSpec("strip-options", _parse),)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(
            "--strip-options " + ",".join(str(k) for k in sorted(o.value))
            for o in options
            if o.value
        )
