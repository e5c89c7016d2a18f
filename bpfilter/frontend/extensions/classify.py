"""CLASSIFY target (libxt_CLASSIFY.c): sets ``skb->priority`` to a tc class.

Value: ``set-class`` is the 32-bit priority (``major << 16 | minor``), printed
``%.4x:%.4x``. Parsing is C ``sscanf("%x:%x")`` as 1.8.9 does it: numbers
wider than 16 bits keep their low bits, a sign is accepted (``1:-1`` is
``0001:ffff``), trailing text is ignored.

Kernel: only reachable from FORWARD, OUTPUT and POSTROUTING (any table).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import FORWARD, OUTPUT, POSTROUTING, KernelPlaced
from bpfilter.ir import Option

_HEX = re.compile(r"[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]+)")
U64 = (1 << 64) - 1


def _scan_hex(text: str) -> tuple[int, str] | None:
    """One ``%x`` conversion: (value as unsigned int, rest) or None."""
    m = _HEX.match(text)
    if m is None:
        return None
    v = int(m.group(2), 16)
    v = U64 if v > U64 else v
    if m.group(1) == "-":
        v = (-v) & U64
    return v & 0xFFFFFFFF, text[m.end() :]


def parse_class(text: str) -> int:
    first = _scan_hex(text)
    if first is None or not first[1].startswith(":"):
        raise ExtensionError(f'Bad class value "{text}"')
    second = _scan_hex(first[1][1:])
    if second is None:
        raise ExtensionError(f'Bad class value "{text}"')
    return ((first[0] << 16) & 0xFFFF0000) | (second[0] & 0xFFFF)


def _parse(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_class(args[0])


@register
class CLASSIFY(KernelPlaced):
    name = "CLASSIFY"
    kind = "target"
    valid_hooks = frozenset({FORWARD, OUTPUT, POSTROUTING})
    options = (OptionSpec("set-class", _parse),)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "set-class")
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(
            f"--set-class {o.value >> 16:04x}:{o.value & 0xFFFF:04x}" for o in options
        )
