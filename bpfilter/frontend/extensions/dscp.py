"""DSCP target and ``-m dscp`` match (libxt_DSCP.c, libxt_dscp.c).

Values: ``set-dscp`` (target) and ``dscp`` (match, negatable) are the 6-bit
DiffServ code point as an int. ``--set-dscp-class`` / ``--dscp-class`` are
folded into them (iptables stores only the number), so ``--dscp-class EF``
prints ``--dscp 0x2e``. Class names match case-insensitively on their
length, as dscp_helper.c does (``ef1`` is EF).
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.frontend.extensions.types import try_number
from bpfilter.ir import Option

DSCP_MAX = 0x3F
DS_CLASSES = (
    ("CS0", 0x00), ("CS1", 0x08), ("CS2", 0x10), ("CS3", 0x18), ("CS4", 0x20),
    ("CS5", 0x28), ("CS6", 0x30), ("CS7", 0x38), ("BE", 0x00),
    ("AF11", 0x0A), ("AF12", 0x0C), ("AF13", 0x0E), ("AF21", 0x12), ("AF22", 0x14),
    ("AF23", 0x16), ("AF31", 0x1A), ("AF32", 0x1C), ("AF33", 0x1E), ("AF41", 0x22),
    ("AF42", 0x24), ("AF43", 0x26), ("EF", 0x2E),
)


def class_to_dscp(name: str) -> int:
    """dscp_helper.c class_to_dscp (strncasecmp on the class name's length)."""
    for cls, value in DS_CLASSES:
        if name[: len(cls)].upper() == cls:
            return value
    raise ExtensionError(f"Invalid DSCP value `{name}'")


def _dscp_number(ext: str, opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        v = try_number(args[0], 0, DSCP_MAX)
        if v is None:
            raise ExtensionError(
                f'{ext}: bad value for option "--{opt}", or out of range (0-{DSCP_MAX}).'
            )
        return v

    return parse


def _dscp_class(args: Sequence[str], ctx: ParseContext) -> int:
    return class_to_dscp(args[0])


@register
class DSCP(KernelPlaced):
    """Sets the DSCP bits of the IPv4 TOS / IPv6 traffic class (mangle table)."""

    name = "DSCP"
    kind = "target"
    valid_tables = ("mangle",)
    options = (
        OptionSpec("set-dscp", _dscp_number("DSCP", "set-dscp")),
        OptionSpec("set-dscp-class", _dscp_class),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.exclusive(found, "set-dscp", "set-dscp-class")
        opt = found.get("set-dscp") or found.get("set-dscp-class")
        if opt is None:
            raise ExtensionError("DSCP target: Parameter --set-dscp is required")
        return (Option("set-dscp", opt.value),)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(f"--set-dscp 0x{o.value:02x}" for o in options)


@register
class DscpMatch(KernelPlaced):
    """``-m dscp [!] --dscp N`` / ``[!] --dscp-class NAME``."""

    name = "dscp"
    kind = "match"
    options = (
        OptionSpec("dscp", _dscp_number("dscp", "dscp"), invert=True),
        OptionSpec("dscp-class", _dscp_class, invert=True),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.exclusive(found, "dscp", "dscp-class")
        opt = found.get("dscp") or found.get("dscp-class")
        if opt is None:
            raise ExtensionError("DSCP match: Parameter --dscp is required")
        return (Option("dscp", opt.value, opt.negated),)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(
            ("! " if o.negated else "") + f"--dscp 0x{o.value:02x}" for o in options
        )
