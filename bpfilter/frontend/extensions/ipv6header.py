"""``-m ipv6header --header LIST [--soft]`` (ip6t_ipv6header): which extension headers exist.

Value: ``header`` is a frozenset of header protocol numbers among 0 (hop-by-hop),
60 (ipv6-opts), 43 (ipv6-route), 44 (ipv6-frag), 51 (ah), 50 (esp),
59 (ipv6-nonxt) and 255 ("protocol": any upper-layer header); ``!`` inverts.
``soft`` (flag): the packet must contain these headers (else: exactly these).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.ir import Family, Option

# (protocol number, name printed by iptables-save), in libip6t_ipv6header's print order.
HEADERS = ((0, "hop-by-hop"), (60, "ipv6-opts"), (43, "ipv6-route"), (44, "ipv6-frag"),
           (51, "ah"), (50, "esp"), (59, "ipv6-nonxt"), (255, "protocol"))
_ALIASES = {"hop-by-hop": 0, "protocol": 255, "hop": 0, "dst": 60, "route": 43, "frag": 44,
            "auth": 51, "esp": 50, "none": 59, "prot": 255, "0": 0, "60": 60, "43": 43,
            "44": 44, "51": 51, "50": 50, "59": 59, "255": 255}
_KNOWN = {n for n, _ in HEADERS}


def _proto(name: str) -> int:
    try:
        num = socket.getprotobyname(name)
    except OSError:
        if name not in _ALIASES:
            raise ExtensionError(f"unknown header `{name}' specified") from None
        num = _ALIASES[name]
    if num not in _KNOWN:
        raise ExtensionError(f"unknown header `{num}' specified")
    return num


def _headers(args: Sequence[str], ctx: ParseContext) -> frozenset[int]:
    out = frozenset(_proto(t) for t in args[0].split(",") if t)
    if not out:
        raise ExtensionError("ip6t_ipv6header: cannot parse header names")
    return out


@register
class Ipv6HeaderMatch(Extension):
    """IPv6 extension header presence match."""

    name = "ipv6header"
    kind = "match"
    families = frozenset({Family.IPV6})
    options = (OptionSpec("header", _headers, invert=True), OptionSpec("soft"))

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "header", "ipv6header")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return ",".join(name for num, name in HEADERS if num in opt.value)
