"""The generic part of an ip6tables rule (struct ip6t_ip6): -s, -d, -i, -o, -p.

Semantics of the kernel's ip6_packet_match(): each address is compared 128 bits
under its mask (any mask, also non-contiguous: ipv6_masked_addr_cmp), XOR its `!`.
`-p` (any value, `-p all` too) asks ipv6_find_hdr(-1): when that fails with fragment
offset 0 (a truncated chain, or a non-first fragment followed by another extension
header) the rule does not match and the packet is HOTDROPPED; otherwise the rule
matches when the final protocol equals the value, or the value is 0, XOR `!`.
ip6tables has no -f.
"""

from __future__ import annotations

from bpfilter.backend.gen import I32, I64
from bpfilter.backend.ipv6 import PROTO_ERR
from bpfilter.backend.matchers import RuleCtx
from bpfilter.backend.matchers.generic import _emit_iface, _ok, uses_in_iface, uses_out_iface
from bpfilter.ir import Address, Negatable, Rule

SRC_OFF, DST_OFF = 8, 24


def emit_generic6(rc: RuleCtx, rule: Rule) -> None:
    """Emit the generic checks in the kernel's order (side-effect free but hotdrop)."""
    for field, off in ((rule.src, SRC_OFF), (rule.dst, DST_OFF)):
        if field is not None:
            _emit_addr6(rc, field, off)
    if rule.in_iface is not None and uses_in_iface(rule):
        _emit_iface(rc, rule.in_iface, rc.pkt.in_name)
    if rule.out_iface is not None and uses_out_iface(rule):
        _emit_iface(rc, rule.out_iface, rc.pkt.out_name)
    if rule.protocol is not None:
        g, b = rc.gen, rc.gen.b
        proto = rc.pkt.proto
        g.branch_if(b.icmp_unsigned("==", proto, I32(PROTO_ERR)), rc.hotdrop, "protook")
        value = int(rule.protocol.value)
        if value == 0:
            if rule.protocol.negated:  # refused by ip6tables; never matches
                b.branch(rc.fail)
                g.at(g.block("dead"))
            return
        rc.require(_ok(rc, b.icmp_unsigned("!=", proto, I32(value)), rule.protocol.negated))


def _emit_addr6(rc: RuleCtx, field: Negatable, off: int) -> None:
    a: Address = field.value
    mask = a.mask.packed
    addr = bytes(x & m for x, m in zip(a.addr.packed, mask, strict=True))
    g, b = rc.gen, rc.gen.b
    if not any(mask):
        if field.negated:  # "! -s ::/0" never matches
            b.branch(rc.fail)
            g.at(g.block("dead"))
        return
    mismatch = None
    for w in range(0, 16, 8):
        m = int.from_bytes(mask[w:w + 8], "little")
        if m == 0:
            continue
        v = g.load(rc.pkt.ip, off + w, I64, align=8)
        ne = b.icmp_unsigned("!=", b.and_(v, I64(m)),
                             I64(int.from_bytes(addr[w:w + 8], "little")))
        mismatch = ne if mismatch is None else b.or_(mismatch, ne)
    assert mismatch is not None
    rc.require(_ok(rc, mismatch, field.negated))
