"""`-p icmpv6 -m icmp6 --icmpv6-type T[/C]` (ip6_tables.c icmp6_match): non-first
fragments never match, fewer than 8 bytes of ICMPv6 header → hotdrop, then
(type == T and code in [min, max]) XOR `!`. Names arrive as (type, code range)."""

from __future__ import annotations

from bpfilter.backend.matchers import register
from bpfilter.backend.matchers.icmp import TypeCodeMatch


@register
class Icmp6(TypeCodeMatch):
    """ICMPv6 has no "any" type: 255 is compared like every other type."""

    module = "icmp6"
    option = "icmpv6-type"
