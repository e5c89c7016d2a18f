"""The generic part of every rule (struct ipt_ip): -s, -d, -i, -o, -p, -f.

Semantics follow the kernel's ip_packet_match(): each field fails the rule when
"mismatch XOR negated"; -p 0 means any protocol even when negated; -f matches
non-first fragments only (fragment offset != 0).
"""

from __future__ import annotations

from llvmlite import ir

from bpfilter.backend.gen import I32, I64, wire32
from bpfilter.backend.matchers import RuleCtx
from bpfilter.backend.packet import IFNAMSIZ
from bpfilter.ir import Address, Negatable, Rule


def uses_in_iface(rule: Rule) -> bool:
    return _iface_mask(rule.in_iface) is not None


def uses_out_iface(rule: Rule) -> bool:
    return _iface_mask(rule.out_iface) is not None


def emit_generic(rc: RuleCtx, rule: Rule) -> None:
    """Emit the generic checks in the kernel's order (side-effect free)."""
    g = rc.gen
    for field, off in ((rule.src, 12), (rule.dst, 16)):
        if field is not None:
            _emit_addr(rc, field, off)
    if rule.in_iface is not None and uses_in_iface(rule):
        _emit_iface(rc, rule.in_iface, rc.pkt.in_name)
    if rule.out_iface is not None and uses_out_iface(rule):
        _emit_iface(rc, rule.out_iface, rc.pkt.out_name)
    if rule.protocol is not None and rule.protocol.value:
        ne = g.b.icmp_unsigned("!=", rc.pkt.proto, I32(rule.protocol.value))
        rc.require(_ok(rc, ne, rule.protocol.negated))
    if rule.fragment is not None:
        op = "!=" if rule.fragment else "=="
        rc.require(g.b.icmp_unsigned(op, rc.pkt.fragoff, I32(0)))


def _ok(rc: RuleCtx, mismatch: ir.Value, negated: bool) -> ir.Value:
    """The rule goes on when not (mismatch XOR negated)."""
    return rc.gen.b.not_(mismatch) if not negated else mismatch


def _emit_addr(rc: RuleCtx, field: Negatable, off: int) -> None:
    a: Address = field.value
    if int(a.mask) == 0:
        if field.negated:  # "! -s 0/0" never matches
            rc.gen.b.branch(rc.fail)
            rc.gen.at(rc.gen.block("dead"))
        return
    g = rc.gen
    v = g.raw32(rc.pkt.ip, off)
    masked = g.b.and_(v, I32(wire32(a.mask.packed)))
    mismatch = g.b.icmp_unsigned("!=", masked, I32(wire32(a.addr.packed)))
    rc.require(_ok(rc, mismatch, field.negated))


def _iface_mask(field: Negatable | None) -> tuple[bytes, bytes] | None:
    """(name bytes, mask bytes) as xtables_parse_interface builds them; None = any."""
    if field is None:
        return None
    name: str = field.value
    if name == "" or name == "+":
        return None if not field.negated else (b"\0" * IFNAMSIZ, b"\0" * IFNAMSIZ)
    raw = name.encode()
    if name.endswith("+"):
        raw = raw[:-1]
        mask = b"\xff" * len(raw)
    else:
        mask = b"\xff" * (len(raw) + 1)  # the NUL is compared too: exact match
    return raw.ljust(IFNAMSIZ, b"\0"), mask.ljust(IFNAMSIZ, b"\0")[:IFNAMSIZ]


def _emit_iface(rc: RuleCtx, field: Negatable, name_ptr: ir.Value | None) -> None:
    nm = _iface_mask(field)
    assert nm is not None and name_ptr is not None, "flavor did not provide the name"
    name, mask = nm
    g = rc.gen
    mismatch = None
    for w in range(0, IFNAMSIZ, 8):
        m = int.from_bytes(mask[w : w + 8], "little")
        if m == 0:
            continue
        v = g.load(name_ptr, w, I64, align=1)
        ne = g.b.icmp_unsigned(
            "!=", g.b.and_(v, I64(m)), I64(int.from_bytes(name[w : w + 8], "little") & m))
        mismatch = ne if mismatch is None else g.b.or_(mismatch, ne)
    if mismatch is None:  # "! -i +": never matches
        g.b.branch(rc.fail)
        g.at(g.block("dead"))
        return
    rc.require(_ok(rc, mismatch, field.negated))
