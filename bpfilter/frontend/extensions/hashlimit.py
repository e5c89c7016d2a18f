"""``-m hashlimit`` (libxt_hashlimit revision 3, kernel xt_hashlimit): per-flow buckets.

After ``finalize`` the options hold the kernel's ``hashlimit_cfg3`` (every
field present, defaults filled in), which is what the backend needs:
- ``hashlimit-upto`` or ``hashlimit-above`` (exactly one; ``! --hashlimit-upto``
  is ``--hashlimit-above``): ``HashlimitRate(avg, bytes)``. Packet mode: avg is
  seconds per packet * 1_000_000. Byte mode: avg is the kernel's byte cost
  (``UINT32_MAX / ((bytes_per_sec >> 4) + 1)``).
- ``hashlimit-burst``: int (packets; in byte mode the kernel's burst count).
- ``hashlimit-mode``: frozenset of "srcip", "srcport", "dstip", "dstport".
- ``hashlimit-name``: str.
- ``hashlimit-htable-size``, ``-max``, ``-gcinterval`` (ms), ``-expire`` (ms): int.
- ``hashlimit-srcmask``, ``hashlimit-dstmask``: prefix lengths.
- ``hashlimit-rate-match``: True when given; ``hashlimit-rate-interval``: int seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionParser,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.limit import atoi, format_rate, rate_unit
from bpfilter.frontend.extensions.types import UINT32_MAX, UINT64_MAX, parse_uint, strtoul
from bpfilter.ir import Family, Option

SCALE = 1_000_000  # XT_HASHLIMIT_SCALE_v2
BYTE_SHIFT = 4
BURST_DEFAULT = 5
BURST_MAX = 1_000_000
GC_DEFAULT = 1000
BYTE_EXPIRE = 15
BYTE_EXPIRE_BURST = 60
MODES = ("srcip", "srcport", "dstip", "dstport")


@dataclass(frozen=True)
class HashlimitRate:
    """The kernel's ``avg`` and whether it is a byte rate (XT_HASHLIMIT_BYTES)."""

    avg: int
    bytes: bool = False
    mult: int = 1  # seconds of the unit written (/sec=1, /min=60 ...); 1 for bytes


def _factor(c: str) -> int:
    return {"m": 1024 * 1024, "k": 1024}.get(c, 1)


def cost_to_bytes(cost: int) -> int:
    r = UINT32_MAX // cost if cost else UINT32_MAX
    return ((r - 1) << BYTE_SHIFT) & UINT64_MAX


def bytes_to_cost(nbytes: int) -> int:
    r = (nbytes >> BYTE_SHIFT) & UINT32_MAX
    return UINT32_MAX // (r + 1)


def _parse_bytes(text: str) -> HashlimitRate | None:
    pos = text.find("b/s")
    if pos <= 0:
        return None
    r = atoi(text) & UINT64_MAX
    if r == 0:
        return None
    tmp = r * _factor(text[pos - 1])
    if tmp > UINT64_MAX:
        raise ExtensionError(f'Rate value too large "{tmp}" (max {UINT64_MAX})')
    cost = bytes_to_cost(tmp)
    if cost == 0:
        raise ExtensionError(f'Rate too high "{text}"')
    return HashlimitRate(cost, True, BYTE_EXPIRE)


def _parse_rate(text: str, opt: str) -> HashlimitRate:
    b = _parse_bytes(text)
    if b is not None:
        return b
    mult = rate_unit(text)
    r = atoi(text) & UINT64_MAX
    if mult is None or r == 0:
        raise ExtensionError(f'hashlimit: Bad value for "--{opt}" option: "{text}"')
    avg = SCALE * mult // r
    if avg == 0:
        raise ExtensionError(f'Rate too fast "{text}"')
    return HashlimitRate(avg, False, mult)


def _upto(args: Sequence[str], ctx: ParseContext) -> HashlimitRate:
    return _parse_rate(args[0], "hashlimit-upto")


def _above(args: Sequence[str], ctx: ParseContext) -> HashlimitRate:
    return _parse_rate(args[0], "hashlimit-above")


def _burst(args: Sequence[str], ctx: ParseContext) -> int:
    """parse_burst: a number with an optional k/m suffix (bytes in byte mode)."""
    text = args[0]
    res = strtoul(text)
    if res is None or res[0] > UINT64_MAX or res[0] < 1 or (res[1] == "" and res[0] > BURST_MAX):
        raise ExtensionError(
            f'bad value for option "--hashlimit-burst", or out of range (1-{BURST_MAX}).'
        )
    v, rest = res
    v *= _factor(rest[:1])
    if v > UINT64_MAX:
        raise ExtensionError(f'bad value for option "--hashlimit-burst", value "{text}" too large')
    return v


def _mode(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
    out: set[str] = set()
    for tok in args[0].replace("|", ",").split(","):
        if tok == "":
            continue
        if tok not in MODES:
            raise ExtensionError(f'hashlimit: Bad value for "--hashlimit-mode" option: "{args[0]}"')
        out.add(tok)
    return frozenset(out)


def _name(args: Sequence[str], ctx: ParseContext) -> str:
    if len(args[0]) < 1:
        raise ExtensionError('hashlimit: option "--hashlimit-name" requires an argument')
    return args[0]


def _u32(opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        return parse_uint(args[0], UINT32_MAX, "hashlimit", opt)

    return parse


def _plen(opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        return parse_uint(args[0], ctx.family.bits, "hashlimit", opt)

    return parse


def _interval(args: Sequence[str], ctx: ParseContext) -> int:
    r = atoi(args[0])
    if r <= 0 or r > 0x7FFFFFFF:
        raise ExtensionError(
            f'hashlimit: Bad value for "--hashlimit-rate-interval" option: "{args[0]}"'
        )
    return r


@register
class HashlimitMatch(Extension):
    """Rate limit per hash bucket (source/destination address and/or port)."""

    name = "hashlimit"
    kind = "match"
    options = (
        OptionSpec("hashlimit-upto", _upto, invert=True, aliases=("hashlimit",)),
        OptionSpec("hashlimit-above", _above, invert=True),
        OptionSpec("hashlimit-burst", _burst),
        OptionSpec("hashlimit-mode", _mode),
        OptionSpec("hashlimit-name", _name),
        OptionSpec("hashlimit-htable-size", _u32("hashlimit-htable-size")),
        OptionSpec("hashlimit-htable-max", _u32("hashlimit-htable-max")),
        OptionSpec("hashlimit-htable-gcinterval", _u32("hashlimit-htable-gcinterval")),
        OptionSpec("hashlimit-htable-expire", _u32("hashlimit-htable-expire")),
        OptionSpec("hashlimit-srcmask", _plen("hashlimit-srcmask")),
        OptionSpec("hashlimit-dstmask", _plen("hashlimit-dstmask")),
        OptionSpec("hashlimit-rate-match", None),
        OptionSpec("hashlimit-rate-interval", _interval),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = {o.name: o for o in options}
        if "hashlimit-upto" in found and "hashlimit-above" in found:
            raise ExtensionError('hashlimit: option "--hashlimit-above" cannot be used '
                                 'together with "--hashlimit-upto".')
        if "hashlimit-name" not in found:
            raise ExtensionError('hashlimit: option "--hashlimit-name" must be specified')
        rate_opt = found.get("hashlimit-upto") or found.get("hashlimit-above")
        if rate_opt is None:
            raise ExtensionError("You have to specify --hashlimit")
        above = (rate_opt.name == "hashlimit-above") != rate_opt.negated
        rate: HashlimitRate = rate_opt.value
        full = ctx.family.bits
        expire_given = "hashlimit-htable-expire" in found
        expire = found["hashlimit-htable-expire"].value if expire_given else rate.mult * 1000
        burst_opt = found.get("hashlimit-burst")
        burst_n = burst_opt.value if burst_opt else BURST_DEFAULT
        avg = rate.avg
        if rate.bytes:
            burst = 0
            if burst_opt is not None:
                unit = cost_to_bytes(avg)
                if burst_n < unit:
                    raise ExtensionError(f"burst cannot be smaller than {unit}b")
                burst = burst_n // unit + (1 if burst_n % unit else 0)
                if not expire_given:
                    expire = BYTE_EXPIRE_BURST * 1000
        else:
            if burst_n > BURST_MAX:
                raise ExtensionError('bad value for option "--hashlimit-burst", '
                                     f"or out of range (1-{BURST_MAX}).")
            burst = burst_n
        interval = found["hashlimit-rate-interval"].value if "hashlimit-rate-interval" in found \
            else 0
        rate_match = "hashlimit-rate-match" in found
        if rate_match:
            if not rate.bytes:
                avg //= rate.mult
            if interval == 0:
                interval = 1 if rate.bytes else rate.mult
        _kernel_rate_check(avg, burst, rate.bytes, rate_match, interval)
        gc = found["hashlimit-htable-gcinterval"].value \
            if "hashlimit-htable-gcinterval" in found else GC_DEFAULT
        if gc == 0 or expire == 0:
            raise ExtensionError("hashlimit: invalid argument (gcinterval/expire 0)")
        out = [
            Option("hashlimit-above" if above else "hashlimit-upto",
                   HashlimitRate(avg, rate.bytes, rate.mult)),
            Option("hashlimit-burst", burst),
            Option("hashlimit-mode", found["hashlimit-mode"].value
                   if "hashlimit-mode" in found else frozenset()),
            Option("hashlimit-name", found["hashlimit-name"].value),
            Option("hashlimit-htable-size", _get(found, "hashlimit-htable-size", 0)),
            Option("hashlimit-htable-max", _get(found, "hashlimit-htable-max", 0)),
            Option("hashlimit-htable-gcinterval", gc),
            Option("hashlimit-htable-expire", expire),
            Option("hashlimit-srcmask", _get(found, "hashlimit-srcmask", full)),
            Option("hashlimit-dstmask", _get(found, "hashlimit-dstmask", full)),
        ]
        if rate_match:
            out.append(Option("hashlimit-rate-match", True))
        out.append(Option("hashlimit-rate-interval", interval))
        return tuple(out)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        v = {o.name: o.value for o in options}
        above = "hashlimit-above" in v
        rate: HashlimitRate = v["hashlimit-above" if above else "hashlimit-upto"]
        parts = ["--hashlimit-above" if above else "--hashlimit-upto"]
        if rate.bytes:
            text, quantum = _print_bytes(rate.avg, v["hashlimit-burst"])
            parts.append(text)
        else:
            parts.append(format_rate(rate.avg, SCALE))
            quantum = _quantum(rate.avg)
            parts.append(f"--hashlimit-burst {v['hashlimit-burst']}")
        if v["hashlimit-mode"]:
            parts.append("--hashlimit-mode " + ",".join(m for m in MODES
                                                        if m in v["hashlimit-mode"]))
        parts.append(f"--hashlimit-name {v['hashlimit-name']}")
        if v["hashlimit-htable-size"]:
            parts.append(f"--hashlimit-htable-size {v['hashlimit-htable-size']}")
        if v["hashlimit-htable-max"]:
            parts.append(f"--hashlimit-htable-max {v['hashlimit-htable-max']}")
        if v["hashlimit-htable-gcinterval"] != GC_DEFAULT:
            parts.append(f"--hashlimit-htable-gcinterval {v['hashlimit-htable-gcinterval']}")
        if v["hashlimit-htable-expire"] != quantum:
            parts.append(f"--hashlimit-htable-expire {v['hashlimit-htable-expire']}")
        full = 128 if ctx.family is Family.IPV6 else 32
        if v["hashlimit-srcmask"] != full:
            parts.append(f"--hashlimit-srcmask {v['hashlimit-srcmask']}")
        if v["hashlimit-dstmask"] != full:
            parts.append(f"--hashlimit-dstmask {v['hashlimit-dstmask']}")
        if "hashlimit-rate-match" in v:
            parts.append("--hashlimit-rate-match")
            if v["hashlimit-rate-interval"] != 1:
                parts.append(f"--hashlimit-rate-interval {v['hashlimit-rate-interval']}")
        return " ".join(parts)


# HZ * CREDITS_PER_JIFFY / XT_HASHLIMIT_SCALE_v2 and HZ * CREDITS_PER_JIFFY_BYTES of
# the kernel: the same for HZ 250 and 1000.
_CREDITS_PER_AVG = 137438953
_CREDITS_BYTES = 4194304000


def _kernel_rate_check(avg: int, burst: int, nbytes: bool, rate_match: bool,
                       interval: int) -> None:
    """hashlimit_mt_check_common's overflow tests (u64 arithmetic that wraps)."""
    if rate_match:
        if avg == 0 or avg > UINT32_MAX:
            raise ExtensionError("hashlimit: invalid rate (Numerical result out of range)")
        if interval == 0:
            raise ExtensionError("hashlimit: invalid interval")
    elif nbytes:
        if ((avg & UINT32_MAX) * _CREDITS_BYTES >> 32) & UINT32_MAX == 0:
            raise ExtensionError(f"hashlimit: overflow, rate too high: {avg}")
    else:
        def credits(user: int) -> int:
            return ((user & UINT64_MAX) * _CREDITS_PER_AVG) & UINT64_MAX

        if burst == 0 or credits(avg * burst) < credits(avg):
            raise ExtensionError(f"hashlimit: overflow, try lower: {avg}/{burst} "
                                 "(Numerical result out of range)")


def _get(found: dict[str, Option], name: str, default: int) -> int:
    return found[name].value if name in found else default


def _quantum(avg: int) -> int:
    """print_rate's return: the printed unit in milliseconds (u32 truncation)."""
    if avg == 0:
        return 0
    table = [(86400, "day"), (3600, "hour"), (60, "min"), (1, "sec")]
    i = 1
    while i < len(table):
        mult = table[i][0] * SCALE
        if avg > mult or mult // avg < mult % avg:
            break
        i += 1
    return (table[i - 1][0] * 1000) & UINT32_MAX


_UNITS = (("m", 1024 * 1024), ("k", 1024), ("", 1))


def _print_bytes(avg: int, burst: int) -> tuple[str, int]:
    r = cost_to_bytes(avg)
    i = 0
    while i < len(_UNITS) - 1:
        name, thresh = _UNITS[i]
        if r >= thresh and bytes_to_cost(r & ~(thresh - 1)) == avg:
            break
        i += 1
    text = f"{r // _UNITS[i][1]}{_UNITS[i][0]}b/s"
    if burst == 0:
        return text, BYTE_EXPIRE * 1000
    r = (r * burst) & UINT64_MAX
    i = 0
    while i < len(_UNITS) - 1:
        if r >= _UNITS[i][1]:
            break
        i += 1
    return f"{text} --hashlimit-burst {r // _UNITS[i][1]}{_UNITS[i][0]}b", BYTE_EXPIRE_BURST * 1000
