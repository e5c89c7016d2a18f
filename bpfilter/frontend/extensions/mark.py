"""``-m mark`` (libxt_mark rev 1) and ``-j MARK`` (libxt_MARK rev 2): the skb mark.

Values:
- match ``mark``: ``ValueMask(value, mask)``; matches when
  ``(skb->mark & mask) == value`` (negatable). Printed ``0xV`` or ``0xV/0xM``.
- target ``set-xmark``: ``ValueMask(value=xor, mask)``; the new mark is
  ``(mark & ~mask) ^ xor``. ``--set-mark``, ``--and-mark``, ``--or-mark`` and
  ``--xor-mark`` are stored in this one form, as the kernel keeps them.
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
from bpfilter.frontend.extensions.types import UINT32_MAX, ValueMask, parse_uint, parse_value_mask
from bpfilter.ir import Option


def markmask(args: Sequence[str], ctx: ParseContext) -> ValueMask:
    """XTTYPE_MARKMASK32: ``value[/mask]``, mask all ones when absent."""
    return parse_value_mask(args[0], UINT32_MAX, "mark")


def uint32(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "MARK", "mark")


def xmark_of(opt: Option) -> ValueMask:
    """The (xor, mask) pair a --set-mark/--and-mark/... option means."""
    v = opt.value
    if opt.name == "set-xmark":
        return v
    if opt.name == "set-mark":
        return ValueMask(v.value, v.value | v.mask)
    if opt.name == "and-mark":
        return ValueMask(0, ~v & UINT32_MAX)
    if opt.name == "or-mark":
        return ValueMask(v, v)
    if opt.name == "xor-mark":
        return ValueMask(v, 0)
    raise ExtensionError(f"unknown mark operation {opt.name}")


MARK_OPS = ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark")


@register
class MarkMatch(Extension):
    """Compare the packet mark under a mask."""

    name = "mark"
    kind = "match"
    options = (OptionSpec("mark", markmask, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('mark: option "--mark" must be specified')
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return opt.value.format()


@register
class MarkTarget(Extension):
    """Set, and, or, xor the packet mark (always saved as --set-xmark)."""

    name = "MARK"
    kind = "target"
    options = (
        OptionSpec("set-xmark", markmask),
        OptionSpec("set-mark", markmask),
        OptionSpec("and-mark", uint32),
        OptionSpec("or-mark", uint32),
        OptionSpec("xor-mark", uint32),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        exclusive("MARK", found, *MARK_OPS)
        if not options:
            raise ExtensionError("MARK target: Parameter --set/and/or/xor-mark is required")
        return (Option("set-xmark", xmark_of(options[0])),)

    def format_value(self, opt: Option) -> str:
        return f"0x{opt.value.value:x}/0x{opt.value.mask:x}"
