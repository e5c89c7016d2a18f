"""``-j NFLOG`` (libxt_NFLOG, kernel xt_NFLOG): send the packet to nfnetlink_log.

Values: ``nflog-prefix``: str (cut to 63 bytes); ``nflog-group``: int 0-65535
(0 is the default, not printed); ``nflog-size``: int bytes to copy (sets the
kernel's COPY_LEN flag) or the deprecated ``nflog-range`` (int, no flag);
``nflog-threshold``: int 0-65535 (packets queued before sending; 0, the default, is not printed).
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    OptionParser,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.log import parse_prefix
from bpfilter.frontend.extensions.options import exclusive
from bpfilter.frontend.extensions.types import UINT16_MAX, UINT32_MAX, parse_uint, save_string
from bpfilter.ir import Option

PREFIX_MAX = 63


def _prefix(args: Sequence[str], ctx: ParseContext) -> str:
    return parse_prefix(args[0], PREFIX_MAX, "nflog-prefix")


def _u16(opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        return parse_uint(args[0], UINT16_MAX, "NFLOG", opt)

    return parse


def _u32(opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        return parse_uint(args[0], UINT32_MAX, "NFLOG", opt)

    return parse


@register
class NflogTarget(Extension):
    """Hand the packet to userspace loggers (ulogd) through nfnetlink_log."""

    name = "NFLOG"
    kind = "target"
    options = (
        OptionSpec("nflog-prefix", _prefix),
        OptionSpec("nflog-group", _u16("nflog-group")),
        OptionSpec("nflog-size", _u32("nflog-size")),
        OptionSpec("nflog-range", _u32("nflog-range")),
        OptionSpec("nflog-threshold", _u16("nflog-threshold")),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        exclusive("NFLOG", found, "nflog-size", "nflog-range")
        kept = [o for o in options
                if not (o.name == "nflog-group" and o.value == 0)
                and not (o.name == "nflog-range" and o.value == 0)
                and not (o.name == "nflog-threshold" and o.value == 0)]
        return super().finalize(kept, ctx)

    def format_value(self, opt: Option) -> str:
        return save_string(opt.value) if opt.name == "nflog-prefix" else str(opt.value)
