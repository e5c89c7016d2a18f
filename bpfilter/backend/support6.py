"""What the BPF backend compiles for ip6tables rules (the rest goes to netfilter).

Why a list and not the matcher registry alone: matchers are registered by module name,
and several IPv4 matchers read IPv4 header offsets (iprange, length, icmp); for IPv6
only the matchers written or checked for the IPv6 prologue (backend/ipv6.py) count.
"""

from __future__ import annotations

from bpfilter.ir import Rule

# tcp/udp/multiport read thoff/fragoff exactly as xt_tcpudp/xt_multiport do for IPv6;
# conntrack/state/mark read skb->_nfct / skb->mark, the same for both families (the
# conntrack matcher refuses IPv6 tuple addresses itself)
IPV6_MODULES = frozenset({"tcp", "udp", "multiport", "comment", "icmp6", "hl", "hbh",
                          "dst", "rt", "frag", "ipv6header", "conntrack", "state", "mark"})


def unsupported_reason6(rule: Rule) -> str | None:
    """Why an ip6tables rule cannot be compiled (None: the family-neutral checks in
    plan.unsupported_reason decide)."""
    if rule.fragment is not None:
        return "-f is not an ip6tables option"
    for m in rule.matches:
        if m.module not in IPV6_MODULES:
            return f"match '{m.module}' not supported by the BPF backend for IPv6"
    return None
