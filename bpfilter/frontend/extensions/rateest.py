"""Rate estimators: the RATEEST target and the ``-m rateest`` match.

RATEEST values: ``rateest-name`` str (cut to 15 characters), ``rateest-interval``
the measuring interval in µs as the kernel rounds it (250 ms · 2^k, k = -2..3
i.e. 250 ms to 8 s), ``rateest-ewmalog`` the kernel's EWMA log weight (the
averaging time is interval · 2^ewmalog, printed as a time like iptables-save).

rateest match values: ``rateest1`` (alias ``--rateest``) and ``rateest2`` the
estimator names; ``rateest-bps1`` / ``rateest-bps2`` (aliases ``--rateest-bps``)
a rate in bytes/s or None when given without a rate; ``rateest-pps1`` /
``rateest-pps2`` (alias ``--rateest-pps``) packets/s or None; ``rateest-delta``
True; the comparison is one of ``rateest-lt`` / ``-gt`` / ``-eq`` (the last
given wins, negated if any was, as in libxt_rateest).

The match depends on a RATEEST rule having created the estimator; the kernel
checks that at load time (not checked here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.frontend.extensions.types import UINT32_MAX, c_unsigned, strtod, try_number
from bpfilter.ir import Option

USEC_PER_SEC = 1_000_000
NAME_SIZE = 16

# --- RATEEST --------------------------------------------------------------------


def parse_time(text: str) -> int | None:
    """RATEEST_get_time: a number with optional s/ms/us suffix, in µs (C unsigned)."""
    res = strtod(text)
    if res is None:
        return None
    t, unit = res
    unit = unit.lower()
    if unit in ("s", "sec", "secs"):
        t *= USEC_PER_SEC
    elif unit in ("ms", "msec", "msecs"):
        t *= USEC_PER_SEC / 1000
    elif unit in ("us", "usec", "usecs"):
        t *= USEC_PER_SEC / 1000000
    elif unit:
        return None
    return c_unsigned(t)


def format_time(us: int) -> str:
    """RATEEST_print_time."""
    if us >= USEC_PER_SEC:
        return f"{us / USEC_PER_SEC:.1f}s"
    if us >= USEC_PER_SEC // 1000:
        return f"{us / (USEC_PER_SEC / 1000):.1f}ms"
    return f"{us}us"


def _name(args: Sequence[str], ctx: ParseContext) -> str:
    return args[0][: NAME_SIZE - 1]


def _time(opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        us = parse_time(args[0])
        if us is None:
            raise ExtensionError(f'RATEEST: bad {opt} value "{args[0]}"')
        return us

    return parse


@register
class RATEEST(KernelPlaced):
    """Creates (or feeds) a named rate estimator; continues the chain walk."""

    name = "RATEEST"
    kind = "target"
    options = (
        OptionSpec("rateest-name", _name),
        OptionSpec("rateest-interval", _time("interval")),
        OptionSpec("rateest-ewmalog", _time("ewmalog")),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "rateest-name")
        interval = self.must(found, "rateest-interval").value
        ewma = self.must(found, "rateest-ewmalog").value
        code = next((i for i in range(6) if interval <= (1 << i) * (USEC_PER_SEC // 4)), 6)
        if code > 5:
            raise ExtensionError("RATEEST: interval value is too large")
        log = 32
        for e in range(1, 32):
            w = 1.0 - 1.0 / (1 << e)
            if interval / (-math.log(w)) > ewma:
                log = e
                break
        log -= 1
        if log == 0 or log >= 31:
            raise ExtensionError("RATEEST: ewmalog value is out of range")
        found["rateest-interval"] = Option("rateest-interval", (USEC_PER_SEC << code) // 4)
        found["rateest-ewmalog"] = Option("rateest-ewmalog", log)
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        vals = {o.name: o.value for o in options}
        interval = vals["rateest-interval"]
        averaging = (interval * (1 << vals["rateest-ewmalog"])) & UINT32_MAX
        return (
            f"--rateest-name {vals['rateest-name']} --rateest-interval {format_time(interval)} "
            f"--rateest-ewmalog {format_time(averaging)}"
        )


# --- rateest match -------------------------------------------------------------

RATE_SUFFIXES = {
    "bit": 1.0, "kibit": 1024.0, "kbit": 1000.0, "mibit": 1024.0**2, "mbit": 1e6,
    "gibit": 1024.0**3, "gbit": 1e9, "tibit": 1024.0**4, "tbit": 1e12,
    "bps": 8.0, "kibps": 8.0 * 1024, "kbps": 8000.0, "mibps": 8.0 * 1024**2, "mbps": 8e6,
    "gibps": 8.0 * 1024**3, "gbps": 8e9, "tibps": 8.0 * 1024**4, "tbps": 8e12,
}
MODES = ("rateest-lt", "rateest-gt", "rateest-eq")


def parse_rate(text: str) -> int:
    """rateest_get_rate: bits/s with a tc-style suffix → bytes/s (no suffix: bits/s too)."""
    res = strtod(text)
    if res is not None:
        bps, unit = res
        if unit == "":
            return c_unsigned(bps / 8.0)
        scale = RATE_SUFFIXES.get(unit.lower())
        if scale is not None:
            return c_unsigned((bps * scale) / 8.0)
    raise ExtensionError(f"rateest: could not parse rate `{text}'")


def format_rate(rate: int) -> str:
    """rateest_print_rate (non-numeric)."""
    bits = float(rate) * 8
    if bits >= 1000.0 * 1000000.0:
        return f"{bits / 1000000.0:.0f}Mbit"
    if bits >= 1000.0 * 1000.0:
        return f"{bits / 1000.0:.0f}Kbit"
    return f"{bits:.0f}bit"


def _opt_rate(args: Sequence[str], ctx: ParseContext) -> int | None:
    return parse_rate(args[0]) if args else None


def _opt_pps(args: Sequence[str], ctx: ParseContext) -> int | None:
    if not args:
        return None
    v = try_number(args[0], 0, UINT32_MAX)
    if v is None:
        raise ExtensionError(f"rateest: could not parse pps `{args[0]}'")
    return v


@register
class RateestMatch(KernelPlaced):
    """``-m rateest``: compares estimator rates (absolute, relative, or as deltas)."""

    name = "rateest"
    kind = "match"
    options = (
        OptionSpec("rateest-delta"),
        OptionSpec("rateest1", _name, aliases=("rateest",)),
        OptionSpec("rateest-bps1", _opt_rate, optional_arg=True),
        OptionSpec("rateest-pps1", _opt_pps, optional_arg=True),
        OptionSpec("rateest-lt", invert=True),
        OptionSpec("rateest-gt", invert=True),
        OptionSpec("rateest-eq", invert=True),
        OptionSpec("rateest-bps2", _opt_rate, aliases=("rateest-bps",), optional_arg=True),
        OptionSpec("rateest-pps2", _opt_pps, aliases=("rateest-pps",), optional_arg=True),
        OptionSpec("rateest2", _name),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_generic(options)
        found = {o.name: o for o in options}
        modes = [o for o in options if o.name in MODES]
        for name in MODES:
            found.pop(name, None)
        if not modes:
            raise ExtensionError("rateest: a comparison (--rateest-lt/-gt/-eq) is required")
        found[modes[-1].name] = Option(modes[-1].name, True, any(m.negated for m in modes))
        self.must(found, "rateest1")
        if not any(n in found for n in ("rateest-bps1", "rateest-bps2", "rateest-pps1",
                                         "rateest-pps2")):
            raise ExtensionError("rateest: --rateest-bps or --rateest-pps is required")
        self.check_placement(ctx)
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        """rateest_save (1.8.9): delta, names, then per kind rate/mode/rate."""
        o = {x.name: x for x in options}
        delta = "rateest-delta" in o
        rel = "rateest2" in o
        mode = next(x for x in options if x.name in MODES)
        mode_text = ("! " if mode.negated else "") + f"--{mode.name}"
        parts = ["--rateest-delta"] if delta else []
        first = "--rateest1" if rel else "--rateest"
        parts.append(f"{first} {o['rateest1'].value}")
        for kind, fmt in (("bps", format_rate), ("pps", str)):
            if f"rateest-{kind}1" not in o and f"rateest-{kind}2" not in o:
                continue
            r1 = o.get(f"rateest-{kind}1")
            r2 = o.get(f"rateest-{kind}2")
            v1 = (r1.value if r1 else None) or 0
            v2 = (r2.value if r2 else None) or 0
            if delta:
                parts += [f"--rateest-{kind}1 {fmt(v1)}", mode_text, f"--rateest-{kind}2"]
            else:
                parts += [mode_text, f"--rateest-{kind}"]
            if not rel or delta:
                parts[-1] += f" {fmt(v2)}"
        if rel:
            parts.append(f"--rateest2 {o['rateest2'].value}")
        return " ".join(parts)
