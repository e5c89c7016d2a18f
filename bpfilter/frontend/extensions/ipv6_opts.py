"""``-m hbh`` and ``-m dst`` (ip6t_hbh / ip6t_dst): IPv6 Hop-by-Hop and Destination options.

Values: ``hbh-len``/``dst-len`` int (header length field, ``!`` allowed);
``hbh-opts``/``dst-opts`` a tuple of ``(option type, length or None)`` in the
order given (at most 16; a length of 255 means "any" and is stored as None,
as the kernel does). Option type 0 (Pad1) has no length.
"""

from __future__ import annotations

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    register,
)
from bpfilter.frontend.extensions.types import UINT32_MAX, c_strtoul, parse_uint
from bpfilter.ir import Family, Option

OPTSNR = 16

OptList = tuple[tuple[int, int | None], ...]


def _num(ext: str, s: str, what: str) -> int:
    """libip6t_hbh/dst parse_opts_num: C strtoul with its overflow check."""
    res = c_strtoul(s)
    if res is None:
        raise ExtensionError(f"{ext}: no valid digits in {what} `{s}'")
    value, rest, overflow = res
    if overflow:
        raise ExtensionError(f"{what} `{s}' specified too big: would overflow")
    if rest != "":
        raise ExtensionError(f"{ext}: error parsing {what} `{s}'")
    return value


def parse_opts(ext: str, text: str) -> OptList:
    """libip6t_hbh/dst parse_options: ``TYPE[:LEN][,TYPE[:LEN]...]``."""
    out: list[tuple[int, int | None]] = []
    items = text.split(",")
    for i, item in enumerate(items):
        if i == OPTSNR:
            raise ExtensionError("too many addresses specified")
        typ, sep, length = item.partition(":")
        if sep and i == OPTSNR - 1:
            raise ExtensionError("too many ports specified")
        t = _num(ext, typ, "opt") & 0xFF
        if sep:
            if t == 0:
                raise ExtensionError("PAD0 has not got length")
            ln = _num(ext, length, "length") & 0xFF
            out.append((t, None if ln == 0xFF else ln))
        else:
            out.append((t, None))
    return tuple(out)


def format_opts(opts: OptList) -> str:
    return ",".join(str(t) if ln is None else f"{t}:{ln}" for t, ln in opts)


class _OptsMatch(Extension):
    kind = "match"
    families = frozenset({Family.IPV6})

    def format_value(self, opt: Option) -> str:
        if isinstance(opt.value, tuple):
            return format_opts(opt.value)
        return str(opt.value)


@register
class HbhMatch(_OptsMatch):
    """Hop-by-Hop options header match."""

    name = "hbh"
    options = (
        OptionSpec("hbh-len", lambda a, c: parse_uint(a[0], UINT32_MAX, "hbh", "hbh-len"),
                   invert=True),
        OptionSpec("hbh-opts", lambda a, c: parse_opts("hbh", a[0])),
    )


@register
class DstMatch(_OptsMatch):
    """Destination options header match."""

    name = "dst"
    options = (
        OptionSpec("dst-len", lambda a, c: parse_uint(a[0], UINT32_MAX, "dst", "dst-len"),
                   invert=True),
        OptionSpec("dst-opts", lambda a, c: parse_opts("dst", a[0])),
    )
