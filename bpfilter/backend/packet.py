"""The per-packet values every matcher reads, produced once by the flavor's prologue.

Why: the flavor copies the IPv4 header and the first bytes of the L4 header into
stack buffers, so matchers are the same code on XDP, TC and netfilter.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

IFNAMSIZ = 16
# Most L4 bytes any matcher reads: a TCP header with all options (doff = 15).
L4_MAX = 60


@dataclass(frozen=True)
class Packet:
    """SSA values of one IPv4 packet (all i32 unless noted).

    ``ip`` points to the first 20 bytes of the IP header; ``l4`` to the first
    ``min(l4_len, needed)`` bytes of the L4 header (zero beyond), loaded only for the
    first fragment (fragoff == 0). ``l4_len`` is the number of L4 bytes inside the
    datagram (tot_len - ihl*4), which is what iptables' skb_header_pointer may read.
    ``in_name`` / ``out_name`` point to 16-byte zero-padded interface names (all zero
    when the hook has no such interface, as iptables' nulldevname), or are None when
    no rule of the program needs them.
    """

    ip: ir.Value
    l4: ir.Value
    tot_len: ir.Value
    l4_len: ir.Value
    proto: ir.Value
    fragoff: ir.Value
    in_name: ir.Value | None = None
    out_name: ir.Value | None = None
