"""``-m time`` (xt_time): daytime, week/month days and a date window.

``finalize`` turns the options into the complete kernel struct, so the IR
says exactly what is tested and prints like iptables-save 1.8.9:

- ``timestart``/``timestop``: seconds since midnight (both present when
  either differs from 00:00:00-23:59:59);
- ``monthdays``: int bitmask, bit d = day d of the month (1-31);
  ``weekdays``: int bitmask, bit d = ISO weekday d (1=Mon ... 7=Sun);
  a ``!`` is applied at parse time (the mask is inverted), as libxt_time does;
- ``datestart``/``datestop``: seconds since the epoch, UTC. ``datestop`` is
  always present (default INT_MAX = 2038-01-19T03:14:07, which 1.8.9 prints);
- ``kerneltz`` (also from ``--localtz``) and ``contiguous``: flags.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.types import c_strtoul, strtoul
from bpfilter.ir import Option

ALL_MONTHDAYS = 0xFFFFFFFE
ALL_WEEKDAYS = 0xFE
MAX_DAYTIME = 24 * 60 * 60 - 1
INT_MAX = 0x7FFFFFFF
WEEK_DAYS = (None, "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EPOCH = dt.date(1970, 1, 1).toordinal()


def _c_strtoul10(s: str) -> tuple[int, str]:
    """C strtoul(s, &end, 10): no digits gives 0 and leaves ``s`` unconsumed."""
    res = c_strtoul(s, 10)
    return (res[0], res[1]) if res is not None else (0, s)


def _date_error(s: str) -> ExtensionError:
    return ExtensionError(
        f'Invalid date "{s}" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]'
    )


def parse_date(s: str) -> int:
    """libxt_time's time_parse_date, including mktime's normalisation (UTC)."""
    fields = [1970, 1, 1, 0, 0, 0]
    limits = ((1970, 2038, "-"), (0, 12, "-"), (0, 31, "T"), (0, 23, ":"), (0, 59, ":"),
              (0, 59, ""))
    rest = s
    for i, (lo, hi, sep) in enumerate(limits):
        v, rest = _c_strtoul10(rest)
        ok_end = rest == "" or (sep != "" and rest[0] == sep)
        if not ok_end or v < lo or v > hi:
            raise _date_error(s)
        fields[i] = v
        if rest == "":
            break
        rest = rest[1:]
    year, month, day, hour, minute, second = fields
    # mktime normalises month 0 / day 0 / day 31 of short months.
    y = year + (month - 1) // 12
    m = (month - 1) % 12 + 1
    days = dt.date(y, m, 1).toordinal() - _EPOCH + day - 1
    t = days * 86400 + hour * 3600 + minute * 60 + second
    if t < 0:
        raise ExtensionError("mktime returned an error")
    return t & 0xFFFFFFFF


def parse_daytime(s: str) -> int:
    """libxt_time's time_parse_minutes: ``hh:mm[:ss]``."""
    err = ExtensionError(
        f'invalid time "{s}" specified, should be hh:mm[:ss] format and within the boundaries'
    )
    hour, rest = _c_strtoul10(s)
    if not rest.startswith(":") or hour > 23:
        raise err
    minute, rest = _c_strtoul10(rest[1:])
    if (rest and rest[0] != ":") or minute > 59:
        raise err
    second = 0
    if rest:
        second, rest = _c_strtoul10(rest[1:])
        if rest or second > 59:
            raise err
    return 3600 * hour + 60 * minute + second


def _segments(arg: str, keep: int):
    """libxt_time's my_strseg: comma-separated pieces, each cut to ``keep`` chars."""
    while arg:
        piece, sep, arg = arg.partition(",")
        yield piece[:keep]
        if not sep:
            return


def parse_monthdays(s: str) -> int:
    mask = 0
    for day in _segments(s, 2):
        res = strtoul(day, 0)
        v, rest = res if res is not None else (0, day)
        if rest != "" or v > 31:
            raise ExtensionError(f"{day} is not a valid day for --monthdays")
        mask |= 1 << v
    return mask


def parse_weekdays(s: str) -> int:
    mask = 0
    for day in _segments(s, 3):
        res = strtoul(day, 0)
        v, rest = res if res is not None else (0, day)
        if rest == "":
            if v == 0:
                raise ExtensionError("No, the week does NOT begin with Sunday.")
            mask |= (1 << v) if v < 32 else 0
            continue
        hits = [i for i in range(1, 8) if day[:2] == WEEK_DAYS[i][:2]]  # type: ignore[index]
        if not hits:
            raise ExtensionError(f"{day} is not a valid day specifier")
        for i in hits:
            mask |= 1 << i
    return mask & 0xFF


def _fmt_daytime(v: int) -> str:
    return f"{v // 3600:02d}:{v // 60 % 60:02d}:{v % 60:02d}"


def _fmt_date(v: int) -> str:
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=v)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


@register
class TimeMatch(Extension):
    """Time-of-day / calendar match (evaluated on the packet's arrival time)."""

    name = "time"
    kind = "match"
    options = (
        OptionSpec("timestart", lambda a, c: parse_daytime(a[0])),
        OptionSpec("timestop", lambda a, c: parse_daytime(a[0])),
        OptionSpec("monthdays", lambda a, c: parse_monthdays(a[0]), invert=True),
        OptionSpec("weekdays", lambda a, c: parse_weekdays(a[0]), invert=True),
        OptionSpec("datestart", lambda a, c: parse_date(a[0])),
        OptionSpec("datestop", lambda a, c: parse_date(a[0])),
        OptionSpec("kerneltz"),
        OptionSpec("contiguous"),
        OptionSpec("localtz"),
        OptionSpec("utc"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        given = {o.name: o for o in options}
        for a, b in (("localtz", "utc"), ("kerneltz", "utc")):
            if a in given and b in given:
                raise ExtensionError(
                    f'time: option "--{b}" cannot be used together with "--{a}".'
                )
        start = given["timestart"].value if "timestart" in given else 0
        stop = given["timestop"].value if "timestop" in given else MAX_DAYTIME
        if "contiguous" in given and start < stop:
            raise ExtensionError(
                "time: --contiguous only makes sense when stoptime is smaller than starttime"
            )
        out: list[Option] = []
        if start != 0 or stop != MAX_DAYTIME:
            out += [Option("timestart", start), Option("timestop", stop)]
        if "monthdays" in given:
            o = given["monthdays"]
            mask = o.value ^ ALL_MONTHDAYS if o.negated else o.value
            if mask != ALL_MONTHDAYS:
                out.append(Option("monthdays", mask))
        if "weekdays" in given:
            o = given["weekdays"]
            mask = (o.value ^ ALL_WEEKDAYS) & 0xFF if o.negated else o.value
            if mask != ALL_WEEKDAYS:
                out.append(Option("weekdays", mask))
        if "datestart" in given and given["datestart"].value != 0:
            out.append(Option("datestart", given["datestart"].value))
        out.append(Option("datestop", given["datestop"].value if "datestop" in given
                          else INT_MAX))
        if "kerneltz" in given or "localtz" in given:
            out.append(Option("kerneltz"))
        if "contiguous" in given:
            out.append(Option("contiguous"))
        return tuple(out)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            if o.name in ("timestart", "timestop"):
                parts.append(f"--{o.name} {_fmt_daytime(o.value)}")
            elif o.name == "monthdays":
                days = ",".join(str(d) for d in range(1, 32) if o.value & (1 << d))
                parts.append(f"--monthdays {days}")
            elif o.name == "weekdays":
                days = ",".join(WEEK_DAYS[d] for d in range(1, 8) if o.value & (1 << d))
                parts.append(f"--weekdays {days}")
            elif o.name in ("datestart", "datestop"):
                if o.value != 0:
                    parts.append(f"--{o.name} {_fmt_date(o.value)}")
            else:
                parts.append(f"--{o.name}")
        return " ".join(parts)
