"""``-m connmark`` (libxt_connmark rev 1) and ``-j CONNMARK`` (libxt_CONNMARK rev 2).

Values:
- match ``mark``: ``ValueMask``; matches when ``(ct->mark & mask) == value``.
- target, one of (after finalize):
  ``set-xmark``: ``ValueMask(xor, mask)``: ``ct->mark = (ct->mark & ~mask) ^ xor``
  (``--set-mark``/``--and-mark``/``--or-mark``/``--xor-mark`` become this);
  ``save-mark`` / ``restore-mark``: True, with ``nfmask`` and ``ctmask`` (ints,
  always present): save is ``ct->mark = (ct->mark & ~ctmask) ^ (skb->mark & nfmask)``,
  restore is ``skb->mark = (skb->mark & ~nfmask) ^ (ct->mark & ctmask)``;
  optional ``left-shift-mark`` / ``right-shift-mark``: int bits (rev 2).
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
from bpfilter.frontend.extensions.mark import MARK_OPS, markmask, xmark_of
from bpfilter.frontend.extensions.options import exclusive
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint
from bpfilter.ir import Option


def _u32(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "CONNMARK", "mask")


def _shift(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], 32, "CONNMARK", "shift-mark")


@register
class ConnmarkMatch(Extension):
    """Compare the connection's mark under a mask."""

    name = "connmark"
    kind = "match"
    options = (OptionSpec("mark", markmask, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('connmark: option "--mark" must be specified')
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return opt.value.format()


_OPS = (*MARK_OPS, "save-mark", "restore-mark")


@register
class ConnmarkTarget(Extension):
    """Set the connection mark, or copy it between the packet and the connection."""

    name = "CONNMARK"
    kind = "target"
    options = (
        OptionSpec("set-xmark", markmask),
        OptionSpec("set-mark", markmask),
        OptionSpec("and-mark", _u32),
        OptionSpec("or-mark", _u32),
        OptionSpec("xor-mark", _u32),
        OptionSpec("save-mark"),
        OptionSpec("restore-mark"),
        OptionSpec("nfmask", _u32),
        OptionSpec("ctmask", _u32),
        OptionSpec("mask", _u32),
        OptionSpec("left-shift-mark", _shift),
        OptionSpec("right-shift-mark", _shift),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        exclusive("CONNMARK", found, *_OPS)
        exclusive("CONNMARK", found, "mask", "nfmask")
        exclusive("CONNMARK", found, "mask", "ctmask")
        op: Option | None = None
        nfmask = ctmask = UINT32_MAX
        shift: Option | None = None
        for o in options:  # the C parser fills one struct in command-line order
            if o.name in MARK_OPS:
                op = o
                ctmask = xmark_of(o).mask
            elif o.name in ("save-mark", "restore-mark"):
                op = o
            elif o.name == "nfmask":
                nfmask = o.value
            elif o.name == "ctmask":
                ctmask = o.value
            elif o.name == "mask":
                nfmask = ctmask = o.value
            else:
                shift = o
        if op is None:
            raise ExtensionError("CONNMARK target: No operation specified")
        if op.name in MARK_OPS:
            xm = xmark_of(op)
            out = [Option("set-xmark", type(xm)(xm.value, ctmask))]
        else:
            out = [Option(op.name, True), Option("nfmask", nfmask), Option("ctmask", ctmask)]
        if shift is not None and shift.value:
            out.append(shift)
        return tuple(out)

    def format_value(self, opt: Option) -> str:
        if opt.name == "set-xmark":
            return f"0x{opt.value.value:x}/0x{opt.value.mask:x}"
        if opt.name in ("nfmask", "ctmask"):
            return f"0x{opt.value:x}"
        return str(opt.value)
