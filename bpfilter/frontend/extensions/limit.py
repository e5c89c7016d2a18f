"""``-m limit`` (libxt_limit, kernel xt_limit): a token bucket shared by the rule.

Values, in the kernel's units so the backend can build the same bucket:
- ``limit``: ``int`` avg = seconds between packets * XT_LIMIT_SCALE (10000);
  ``3/hour`` is 12000000. Always present after finalize (default 3/hour).
- ``limit-burst``: ``int`` bucket depth in packets (default 5), always present.
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
from bpfilter.frontend.extensions.types import parse_uint
from bpfilter.ir import Option

XT_LIMIT_SCALE = 10000
DEFAULT_AVG = XT_LIMIT_SCALE * 3600 // 3
DEFAULT_BURST = 5
UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
_PRINT = (("day", 86400), ("hour", 3600), ("min", 60), ("sec", 1))
# HZ * CREDITS_PER_JIFFY of the kernel (32000 for HZ 250 and 1000).
_CREDITS = 32000
_M32 = 0xFFFFFFFF


def atoi(text: str) -> int:
    """C atoi/atoll: optional blanks and sign, then leading digits (0 when none)."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    n = 0
    while n < len(s) and s[n].isdigit():
        n += 1
    return sign * int(s[:n]) if n else 0


def rate_unit(text: str) -> int | None:
    """Seconds per unit for ``/sec``-style suffixes (any case-insensitive prefix), else None."""
    _, sep, unit = text.partition("/")
    if not sep:
        return 1
    if not unit:
        return None
    for name, mult in UNITS:
        if name.startswith(unit.lower()):
            return mult
    return None


def parse_rate(text: str, scale: int) -> int | None:
    """libxt_limit's parse_rate: the kernel avg, or None for a bad rate."""
    mult = rate_unit(text)
    r = atoi(text)
    if mult is None or r <= 0:
        return None
    return scale * mult // r


def format_rate(avg: int, scale: int) -> str:
    """print_rate: the largest unit whose quotient is exact enough."""
    if avg == 0:
        return "inf"
    table = [(n, m * scale) for n, m in _PRINT]
    i = 1
    while i < len(table):
        mult = table[i][1]
        if avg > mult or mult // avg < mult % avg:
            break
        i += 1
    name, mult = table[i - 1]
    return f"{mult // avg}/{name}"


def _limit(args: Sequence[str], ctx: ParseContext) -> int:
    avg = parse_rate(args[0], XT_LIMIT_SCALE)
    if avg is None:
        raise ExtensionError(f'bad rate "{args[0]}"\'')
    if avg == 0:
        raise ExtensionError(f'Rate too fast "{args[0]}"')
    if avg > _M32:
        raise ExtensionError(f'bad rate "{args[0]}"\'')
    return avg


def _burst(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], 10000, "limit", "limit-burst")


def _user2credits(user: int) -> int:
    user &= _M32
    if user > _M32 // _CREDITS:
        return ((user // XT_LIMIT_SCALE) * _CREDITS) & _M32
    return (user * _CREDITS) // XT_LIMIT_SCALE


@register
class LimitMatch(Extension):
    """Average rate limit with a burst, as xt_limit's token bucket."""

    name = "limit"
    kind = "match"
    options = (OptionSpec("limit", _limit), OptionSpec("limit-burst", _burst))

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        avg = found["limit"].value if "limit" in found else DEFAULT_AVG
        burst = found["limit-burst"].value if "limit-burst" in found else DEFAULT_BURST
        if burst == 0 or _user2credits(avg * burst) < _user2credits(avg):
            raise ExtensionError(f"Overflow, try lower: {avg}/{burst} "
                                 "(Numerical result out of range)")
        return (Option("limit", avg), Option("limit-burst", burst))

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        found = {o.name: o.value for o in options}
        text = f"--limit {format_rate(found['limit'], XT_LIMIT_SCALE)}"
        if found["limit-burst"] != DEFAULT_BURST:
            text += f" --limit-burst {found['limit-burst']}"
        return text
