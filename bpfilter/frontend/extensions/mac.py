"""``-m mac`` (libxt_mac, kernel xt_mac): Ethernet source address.

Value: ``mac-source``: the 6 address bytes (``bytes``), negatable; printed
lower-case ``aa:bb:cc:dd:ee:ff``. Kernel: only PREROUTING, INPUT, FORWARD.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.ir import Option

HOOKS = ("PREROUTING", "INPUT", "FORWARD")
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_mac(text: str) -> bytes:
    """XTTYPE_ETHERMAC: six ``:``-separated hex bytes of at most two digits (empty: 0)."""
    parts = text.split(":")
    if len(parts) != 6 or any(len(p) > 2 or not set(p) <= _HEX for p in parts):
        raise ExtensionError("Invalid MAC address specified.")
    return bytes(int(p or "0", 16) for p in parts)


def _mac(args: Sequence[str], ctx: ParseContext) -> bytes:
    return parse_mac(args[0])


@register
class MacMatch(KernelPlaced):
    name = "mac"
    kind = "match"
    valid_hooks = frozenset(HOOKS)
    options = (OptionSpec("mac-source", _mac, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('mac: option "--mac-source" must be specified')
        self.check_placement(ctx)
        return self.ordered(options)

    def format_value(self, opt: Option) -> str:
        return ":".join(f"{b:02x}" for b in opt.value)
