"""``-j LOG`` (libxt_LOG, IPv4 and IPv6): kernel log line per packet; not terminal.

Values: ``log-prefix``: str (at most 29 bytes, longer input is cut as the
kernel struct holds it); ``log-level``: int syslog level 0-7 (default 4,
not printed); flags ``log-tcp-sequence``, ``log-tcp-options``,
``log-ip-options``, ``log-uid``, ``log-macdecode``: True.
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
from bpfilter.frontend.extensions.types import save_string, try_number
from bpfilter.ir import Option

PREFIX_MAX = 29
DEFAULT_LEVEL = 4
LEVELS = {"alert": 1, "crit": 2, "debug": 7, "emerg": 0, "error": 3, "info": 6,
          "notice": 5, "panic": 0, "warning": 4}


def parse_level(text: str) -> int:
    """XTTYPE_SYSLOGLEVEL: 0-7 or a lower-case syslog level name."""
    v = try_number(text, 0, 7)
    if v is None:
        v = LEVELS.get(text)
    if v is None:
        raise ExtensionError(f'log level "{text}" unknown')
    return v


def parse_prefix(text: str, limit: int, opt: str) -> str:
    """A non-empty prefix without newlines, cut to what the kernel struct holds."""
    if not text:
        raise ExtensionError("Argument must have a minimum length of 1 characters")
    if "\n" in text:
        raise ExtensionError(f"Newlines not allowed in --{opt}")
    return text.encode()[:limit].decode(errors="ignore")


def _level(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_level(args[0])


def _prefix(args: Sequence[str], ctx: ParseContext) -> str:
    return parse_prefix(args[0], PREFIX_MAX, "log-prefix")


FLAGS = ("log-tcp-sequence", "log-tcp-options", "log-ip-options", "log-uid", "log-macdecode")


@register
class LogTarget(Extension):
    """Log the packet to the kernel log and continue with the next rule."""

    name = "LOG"
    kind = "target"
    options = (
        OptionSpec("log-prefix", _prefix),
        OptionSpec("log-level", _level),
        *(OptionSpec(f) for f in FLAGS),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        kept = [o for o in options if not (o.name == "log-level" and o.value == DEFAULT_LEVEL)]
        return super().finalize(kept, ctx)

    def format_value(self, opt: Option) -> str:
        return save_string(opt.value) if opt.name == "log-prefix" else str(opt.value)
