"""``-m icmp6 --icmpv6-type T[/C]`` (libip6t_icmp6, ip6t_icmp6), loaded by ``-p icmpv6``.

Value: ``IcmpType(type, code_min, code_max)`` (see icmp.py). iptables-save
prints the number.
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
from bpfilter.frontend.extensions.icmp import parse_icmp_type, save_icmp_type
from bpfilter.frontend.extensions.placement import require_protocol
from bpfilter.ir import Family, Option

ICMPV6_CODES: tuple[tuple[str, int, int, int], ...] = (
    ("destination-unreachable", 1, 0, 0xFF), ("no-route", 1, 0, 0),
    ("communication-prohibited", 1, 1, 1), ("beyond-scope", 1, 2, 2),
    ("address-unreachable", 1, 3, 3), ("port-unreachable", 1, 4, 4),
    ("failed-policy", 1, 5, 5), ("reject-route", 1, 6, 6), ("packet-too-big", 2, 0, 0xFF),
    ("time-exceeded", 3, 0, 0xFF), ("ttl-exceeded", 3, 0, 0xFF),
    ("ttl-zero-during-transit", 3, 0, 0), ("ttl-zero-during-reassembly", 3, 1, 1),
    ("parameter-problem", 4, 0, 0xFF), ("bad-header", 4, 0, 0),
    ("unknown-header-type", 4, 1, 1), ("unknown-option", 4, 2, 2),
    ("echo-request", 128, 0, 0xFF), ("ping", 128, 0, 0xFF), ("echo-reply", 129, 0, 0xFF),
    ("pong", 129, 0, 0xFF), ("router-solicitation", 133, 0, 0xFF),
    ("router-advertisement", 134, 0, 0xFF), ("neighbour-solicitation", 135, 0, 0xFF),
    ("neighbor-solicitation", 135, 0, 0xFF), ("neighbour-advertisement", 136, 0, 0xFF),
    ("neighbor-advertisement", 136, 0, 0xFF), ("redirect", 137, 0, 0xFF),
)


@register
class Icmp6Match(Extension):
    """ICMPv6 type/code; the kernel wants ``-p icmpv6`` (58, not negated)."""

    name = "icmp6"
    kind = "match"
    families = frozenset({Family.IPV6})
    options = (OptionSpec("icmpv6-type",
                          lambda a, c: parse_icmp_type(a[0], ICMPV6_CODES, "ICMPv6"),
                          invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        require_protocol(ctx, 58, "icmp6 match")
        if not options:
            raise ExtensionError('icmp6: option "--icmpv6-type" must be specified')
        return tuple(options)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(save_icmp_type("icmpv6-type", o, False) for o in options)
