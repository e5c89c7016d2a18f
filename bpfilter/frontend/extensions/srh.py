"""``-m srh`` (ip6t_srh rev. 1): the IPv6 Segment Routing Header.

Values: ``srh-next-hdr``, ``srh-{hdr-len,segs-left,last-entry}-{eq,gt,lt}``
ints 0-255, ``srh-tag`` int 0-65535, ``srh-{psid,nsid,lsid}`` ``SrhSid``
(address as given, prefix length; the kernel compares under the prefix).
Every option can be negated. The kernel keeps one value per field, so the
eq/gt/lt tests of one field share the value given last (as 1.8.9 prints).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import (
    Extension,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.types import parse_uint
from bpfilter.frontend.netparse import parse_hostmask_plen
from bpfilter.ir import Family, Option


@dataclass(frozen=True)
class SrhSid:
    """A segment ID test: ``addr`` (unmasked, printed as given) under ``/prefixlen``."""

    addr: ipaddress.IPv6Address
    prefixlen: int

    def __str__(self) -> str:
        return f"{self.addr}/{self.prefixlen}"


def _sid(opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> SrhSid:
        hm = parse_hostmask_plen(args[0], Family.IPV6, "srh")
        return SrhSid(hm.addr, hm.prefixlen)  # type: ignore[arg-type]

    return parse


def _u(opt: str, hi: int):
    return lambda a, c: parse_uint(a[0], hi, "srh", opt)


_FIELDS = ("hdr-len", "segs-left", "last-entry")
_INT_OPTS = ("srh-next-hdr",) + tuple(
    f"srh-{f}-{op}" for f in _FIELDS for op in ("eq", "gt", "lt")
)


@register
class SrhMatch(Extension):
    """Segment Routing Header match."""

    name = "srh"
    kind = "match"
    families = frozenset({Family.IPV6})
    options = (
        *(OptionSpec(n, _u(n, 255), invert=True) for n in _INT_OPTS),
        OptionSpec("srh-tag", _u("srh-tag", 0xFFFF), invert=True),
        OptionSpec("srh-psid", _sid("srh-psid"), invert=True),
        OptionSpec("srh-nsid", _sid("srh-nsid"), invert=True),
        OptionSpec("srh-lsid", _sid("srh-lsid"), invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        last: dict[str, int] = {}
        for o in options:
            for f in _FIELDS:
                if o.name.startswith(f"srh-{f}-"):
                    last[f] = o.value
        out = []
        for o in options:
            for f in _FIELDS:
                if o.name.startswith(f"srh-{f}-"):
                    o = Option(o.name, last[f], o.negated)
            out.append(o)
        return super().finalize(out, ctx)
