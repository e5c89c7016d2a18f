"""``-m statistic`` (libxt_statistic, kernel xt_statistic): random or every-nth packet.

Values: ``mode``: "random" or "nth". Random: ``probability`` is the kernel's
31-bit fixed point ``round(p * 2**31)`` (a packet matches when
``get_random_u32() & 0x7FFFFFFF < probability``). Nth: ``every`` (n, >= 1) and
``packet`` (0 <= p <= n-1): every n-th packet, starting at the p-th.
``negated`` on ``probability`` / ``every`` inverts the match.
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
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint, strtod
from bpfilter.ir import Option


def _mode(args: Sequence[str], ctx: ParseContext) -> str:
    if args[0] not in ("random", "nth"):
        raise ExtensionError(f'Bad mode "{args[0]}"')
    return args[0]


def _probability(args: Sequence[str], ctx: ParseContext) -> int:
    res = strtod(args[0])
    if res is None or res[1] != "" or not 0.0 <= res[0] <= 1.0:
        raise ExtensionError(
            'statistic: bad value for option "--probability", or out of range (0.000000-1.000000).'
        )
    return _lround(0x80000000 * res[0])


def _lround(x: float) -> int:
    """C lround: halves away from zero."""
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _every(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "statistic", "every", lo=1)


def _packet(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "statistic", "packet")


@register
class StatisticMatch(Extension):
    """Match a random share of packets, or every n-th one."""

    name = "statistic"
    kind = "match"
    options = (
        OptionSpec("mode", _mode),
        OptionSpec("probability", _probability, invert=True),
        OptionSpec("every", _every, invert=True),
        OptionSpec("packet", _packet),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = [o.name for o in options]
        for i, n in enumerate(names):
            if n == "probability" and {"every", "packet"} & set(names[:i]):
                other = "every" if "every" in names[:i] else "packet"
                raise ExtensionError(f'statistic: option "--probability" cannot be used '
                                     f'together with "--{other}".')
            if n in ("every", "packet") and "probability" in names[:i]:
                raise ExtensionError(f'statistic: option "--{n}" cannot be used together '
                                     'with "--probability".')
        found = {o.name: o for o in options}
        if "mode" not in found:
            raise ExtensionError('statistic: option "--mode" must be specified')
        if "every" in found and "packet" not in found:
            raise ExtensionError('statistic: option "--every" also requires "--packet".')
        if "packet" in found and "every" not in found:
            raise ExtensionError('statistic: option "--packet" also requires "--every".')
        mode = found["mode"].value
        if mode == "random" and "probability" not in found:
            raise ExtensionError("--probability must be specified when using random mode")
        if mode == "nth" and "every" not in found:
            raise ExtensionError("--every and --packet must be specified when using nth mode")
        if "every" in found and found["packet"].value > found["every"].value - 1:
            raise ExtensionError("the --packet p must be 0 <= p <= n-1")
        if mode == "random":
            return (found["mode"], found["probability"])
        return (found["mode"], found["every"], found["packet"])

    def format_value(self, opt: Option) -> str:
        if opt.name == "probability":
            return f"{opt.value / 0x80000000:.11f}"
        return str(opt.value)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        found = {o.name: o for o in options}
        # The invert flag is global in the kernel struct; it prints before
        # the probability / every option whichever mode is set.
        neg = any(o.negated for o in options)
        mode = found["mode"].value
        if mode == "random":
            p = found.get("probability")
            value = self.format_value(p) if p else "0.00000000000"
            return f"--mode random {'! ' if neg else ''}--probability {value}"
        every = found["every"].value if "every" in found else 1
        packet = found["packet"].value if "packet" in found else 0
        return f"--mode nth {'! ' if neg else ''}--every {every} --packet {packet}"
