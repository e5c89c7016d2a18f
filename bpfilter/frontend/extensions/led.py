"""LED target (libxt_LED.c): blinks the LED trigger ``netfilter-<id>``.

Values: ``led-trigger-id`` str (at most 16 characters), ``led-delay`` the
32-bit delay in ms (0xffffffff for "inf"), ``led-always-blink`` True.
iptables-save quotes the id (escaping ``"`` and ``\\``) and prints the delay
with ``%d`` when not 0, so "inf" prints as ``-1``, as 1.8.9 does.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.frontend.extensions.types import UINT32_MAX, try_number
from bpfilter.ir import Option

ID_MAX = 27 - 11  # sizeof(id) - sizeof("netfilter-")


def _trigger(args: Sequence[str], ctx: ParseContext) -> str:
    if len(args[0]) > ID_MAX:
        raise ExtensionError(f"Argument must have a maximum length of {ID_MAX} characters")
    return args[0]


def _delay(args: Sequence[str], ctx: ParseContext) -> int:
    if args[0][:3].lower() == "inf":
        return UINT32_MAX
    v = try_number(args[0], 0, UINT32_MAX)
    if v is None:
        raise ExtensionError(f"Delay value must be within range 0..{UINT32_MAX}")
    return v


@register
class LED(KernelPlaced):
    name = "LED"
    kind = "target"
    options = (
        OptionSpec("led-trigger-id", _trigger),
        OptionSpec("led-delay", _delay),
        OptionSpec("led-always-blink"),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "led-trigger-id")
        if found.get("led-delay") is not None and found["led-delay"].value == 0:
            del found["led-delay"]  # the default; not printed
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            if o.name == "led-trigger-id":
                esc = "".join("\\" + c if c in '"\\' else c for c in o.value)
                parts.append(f'--led-trigger-id "{esc}"')
            elif o.name == "led-delay":
                signed = o.value - (1 << 32) if o.value >= 1 << 31 else o.value
                parts.append(f"--led-delay {signed}")
            else:
                parts.append("--led-always-blink")
        return " ".join(parts)
