"""The per-packet values every matcher reads, produced once by the flavor's prologue.

Why: the flavor copies the IPv4 header and the first bytes of the L4 header into
stack buffers, so matchers are the same code on XDP, TC and netfilter.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from bpfilter.backend.gen import I32, Gen

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
    meta: ir.Value  # stack copy of (tot_len, l4_len, proto, fragoff) as 4 x i32
    in_name: ir.Value | None = None
    out_name: ir.Value | None = None
    # nf flavor only: the hook's `struct sk_buff *` (trusted BTF pointer), for matches
    # reading kernel state netfilter computed before the hook (conntrack, mark, route)
    skb: ir.Value | None = None


META_FIELDS = ("tot_len", "l4_len", "proto", "fragoff")


class PacketView:
    """What one rule reads: the same fields as `Packet`, each loaded afresh from the
    stack through a pointer LLVM cannot see through (`Gen.opaque`).

    Why: if rule k compares a register with its constant and rule k+1 compares the
    same register with another constant, LLVM and the verifier both learn the exact
    value; the verifier then marks it precise, states of different rules stop being
    equivalent, and verification grows quadratically with the rules (measured: 600k
    instructions processed for 1000 rules). Fresh loads are unknown values: states
    prune, and cost one stack load per field per rule.
    """

    def __init__(self, gen: Gen, pkt: Packet) -> None:
        self._g = gen
        self._pkt = pkt
        self._cache: dict[str, ir.Value | None] = {}

    def _ptr(self, name: str) -> ir.Value | None:
        if name not in self._cache:
            p = getattr(self._pkt, name)
            self._cache[name] = None if p is None else self._g.opaque(p)
        return self._cache[name]

    @property
    def ip(self) -> ir.Value:
        p = self._ptr("ip")
        assert p is not None
        return p

    @property
    def l4(self) -> ir.Value:
        p = self._ptr("l4")
        assert p is not None
        return p

    @property
    def in_name(self) -> ir.Value | None:
        return self._ptr("in_name")

    @property
    def out_name(self) -> ir.Value | None:
        return self._ptr("out_name")

    @property
    def skb(self) -> ir.Value | None:
        """The skb pointer (nf flavor) or None; not hidden: it is a kernel pointer."""
        return self._pkt.skb

    def _meta(self, name: str) -> ir.Value:
        key = "meta." + name
        if key not in self._cache:
            base = self._ptr("meta")
            assert base is not None
            self._cache[key] = self._g.load(base, 4 * META_FIELDS.index(name), I32, align=4)
        v = self._cache[key]
        assert v is not None
        return v

    @property
    def tot_len(self) -> ir.Value:
        return self._meta("tot_len")

    @property
    def l4_len(self) -> ir.Value:
        return self._meta("l4_len")

    @property
    def proto(self) -> ir.Value:
        return self._meta("proto")

    @property
    def fragoff(self) -> ir.Value:
        return self._meta("fragoff")
