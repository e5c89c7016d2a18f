"""`-m conntrack` (xt_conntrack.c, conntrack_mt rev 3) and `-m state` (xt_state.c),
nf flavor only: the packet already went through conntrack (PREROUTING/OUTPUT at
priority -200) when the filter hooks run, so `skb->_nfct` holds exactly what the
kernel match reads: `struct nf_conn *` | ctinfo (low 3 bits), like nf_ct_get().

statebit (both matches): ct != NULL → 1 << (ctinfo % IP_CT_IS_REPLY + 1) (ESTABLISHED
2, RELATED 4, NEW 8); ct == NULL → UNTRACKED (256) when ctinfo == IP_CT_UNTRACKED,
else INVALID (1). conntrack adds SNAT (512) / DNAT (1024) from ct->status. Then:
* --ctstate: (mask & statebit) != 0, XOR `!`;
* with no conntrack entry the rule matches iff it has --ctstate (the other options
  are never looked at, not even negated ones — the kernel returns early);
* --ctdir ORIGINAL/REPLY: CTINFO2DIR(ctinfo) (ctinfo >= IP_CT_IS_REPLY → REPLY);
* --ctorig/--ctrepl src/dst: tuplehash[dir].tuple address under the prefix mask;
* --ctproto: tuplehash[ORIGINAL].tuple.dst.protonum; --ct*port: the tuple's
  ntohs(u.all) in [lo, hi]; --ctstatus: (mask & ct->status) != 0 (so NONE never
  matches, `! --ctstatus NONE` always), each XOR its `!`.
`state`'s `!` complements the mask (libxt_state): equal to XOR for one-bit statebits.
--ctexpire is not compiled (it needs the kernel's HZ): the planner keeps it in netfilter.
"""

from __future__ import annotations

import ipaddress

from llvmlite import ir

from bpfilter.backend.gen import I32, I64, wire32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import xor_neg
from bpfilter.backend.matchers._skb import need_skb, read_kernel, shared_stack, skb_u64
from bpfilter.ir import Match, Option, Rule
from bpfilter.loader import btf

STATE_BITS = {"INVALID": 1, "ESTABLISHED": 2, "RELATED": 4, "NEW": 8, "UNTRACKED": 256,
              "SNAT": 512, "DNAT": 1024}
STATUS_BITS = {"EXPECTED": 1, "SEEN_REPLY": 2, "ASSURED": 4, "CONFIRMED": 8}
IPS_SRC_NAT, IPS_DST_NAT = 16, 32
IP_CT_IS_REPLY, IP_CT_UNTRACKED = 3, 7
NFCT_INFOMASK = 7

SUPPORTED = frozenset({"ctstate", "ctstatus", "ctproto", "ctdir", "ctorigsrc", "ctorigdst",
                       "ctreplsrc", "ctrepldst", "ctorigsrcport", "ctorigdstport",
                       "ctreplsrcport", "ctrepldstport"})
# option → (direction 0 ORIGINAL / 1 REPLY, "src" | "dst")
TUPLE_ADDR = {"ctorigsrc": (0, "src"), "ctorigdst": (0, "dst"), "ctreplsrc": (1, "src"),
              "ctrepldst": (1, "dst")}
TUPLE_PORT = {"ctorigsrcport": (0, "src"), "ctorigdstport": (0, "dst"),
              "ctreplsrcport": (1, "src"), "ctrepldstport": (1, "dst")}


class CtLayout:
    """Offsets in struct nf_conn (vmlinux BTF) of what the match reads."""

    def __init__(self) -> None:
        b = btf.load()
        self.status = b.struct_member_offset("nf_conn", "status")
        th = b.struct_member_offset("nf_conn", "tuplehash")
        th_size = b.type_size("nf_conntrack_tuple_hash")
        tup = b.struct_member_offset("nf_conntrack_tuple_hash", "tuple")
        self.tuple = (th + tup, th + th_size + tup)
        self.field = {
            "src.addr": b.struct_member_offset("nf_conntrack_tuple", "src.u3"),
            "src.port": b.struct_member_offset("nf_conntrack_tuple", "src.u"),
            "dst.addr": b.struct_member_offset("nf_conntrack_tuple", "dst.u3"),
            "dst.port": b.struct_member_offset("nf_conntrack_tuple", "dst.u"),
            "proto": b.struct_member_offset("nf_conntrack_tuple", "dst.protonum"),
        }
        self.lo = min(self.tuple[0], self.status)
        self.hi = max(self.tuple[1] + b.type_size("nf_conntrack_tuple"), self.status + 8)

    def off(self, direction: int, field: str) -> int:
        """Offset of a tuple field in the copied window [lo, hi)."""
        return self.tuple[direction] + self.field[field] - self.lo


def _states(match: Match) -> tuple[int, bool] | None:
    o = match.get("ctstate") or match.get("state")
    if o is None:
        return None
    return sum(STATE_BITS[s] for s in o.value), o.negated


def emit_ct(rc: RuleCtx, match: Match) -> None:
    g, b = rc.gen, rc.gen.b
    skb = need_skb(rc, f"-m {match.module}")
    nfct = skb_u64(rc, skb, "_nfct")
    ctinfo = b.trunc(b.and_(nfct, I64(NFCT_INFOMASK)), I32)
    ct = b.and_(nfct, I64(~NFCT_INFOMASK & 0xFFFFFFFFFFFFFFFF))
    has_ct = b.icmp_unsigned("!=", ct, I64(0))
    states = _states(match)
    others = [o for o in match.options if o.name not in ("ctstate", "state")]
    needs_status = bool(states and states[0] & (STATE_BITS["SNAT"] | STATE_BITS["DNAT"]))
    lay = CtLayout() if (others or needs_status) else None

    win = status = None
    if lay is not None:
        # Copy the nf_conn window only when there is a conntrack entry: zeros otherwise.
        win = shared_stack(rc, lay.hi - lay.lo, "nfconn")
        for off in range(0, lay.hi - lay.lo, 8):  # zeros when there is no entry
            b.store(I64(0), g.ptr(win, off), align=8)
        rd, done = g.block("ctread"), g.block("ctread.done")
        b.cbranch(has_ct, rd, done)
        g.at(rd)
        rc.require(b.not_(read_kernel(rc, win, b.add(ct, I64(lay.lo)), lay.hi - lay.lo)))
        b.branch(done)
        g.at(done)
        status = g.load(win, lay.status - lay.lo, I64, align=8)

    if states is not None:
        mask, neg = states
        ct_bit = b.shl(I32(1), b.add(b.urem(ctinfo, I32(IP_CT_IS_REPLY)), I32(1)))
        no_ct = b.select(b.icmp_unsigned("==", ctinfo, I32(IP_CT_UNTRACKED)), I32(256), I32(1))
        bit = b.select(has_ct, ct_bit, no_ct)
        if needs_status:
            assert status is not None
            st = b.trunc(status, I32)
            snat = b.select(b.icmp_unsigned("!=", b.and_(st, I32(IPS_SRC_NAT)), I32(0)),
                            I32(512), I32(0))
            dnat = b.select(b.icmp_unsigned("!=", b.and_(st, I32(IPS_DST_NAT)), I32(0)),
                            I32(1024), I32(0))
            bit = b.or_(bit, b.select(has_ct, b.or_(snat, dnat), I32(0)))
        hit = b.icmp_unsigned("!=", b.and_(bit, I32(mask)), I32(0))
        rc.require(xor_neg(rc, hit, neg))
    if not others:
        return
    if states is None:  # no entry and no --ctstate: the kernel says no match
        rc.require(has_ct)
    else:  # no entry but the state matched: the rule matches, skip the rest
        matched = g.block("ct.nonct")
        rest = g.block("ct.rest")
        b.cbranch(has_ct, rest, matched)
        g.at(rest)
    assert lay is not None and win is not None and status is not None
    for o in others:
        _emit_option(rc, o, lay, win, status, ctinfo)
    if states is not None:
        b.branch(matched)
        g.at(matched)


def _emit_option(rc: RuleCtx, o: Option, lay: CtLayout, win: ir.Value, status: ir.Value,
                 ctinfo: ir.Value) -> None:
    g, b = rc.gen, rc.gen.b
    if o.name == "ctdir":
        is_orig = b.icmp_unsigned("<", ctinfo, I32(IP_CT_IS_REPLY))
        rc.require(is_orig if o.value == "ORIGINAL" else b.not_(is_orig))
    elif o.name == "ctstatus":
        mask = sum(STATUS_BITS[s] for s in o.value)
        hit = b.icmp_unsigned("!=", b.and_(status, I64(mask)), I64(0))
        rc.require(xor_neg(rc, hit, o.negated))
    elif o.name == "ctproto":
        proto = g.u8(win, lay.off(0, "proto"))
        rc.require(xor_neg(rc, b.icmp_unsigned("==", proto, I32(o.value)), o.negated))
    elif o.name in TUPLE_ADDR:
        d, which = TUPLE_ADDR[o.name]
        net = ipaddress.ip_network(f"{o.value.addr}/{o.value.prefixlen}", strict=False)
        off = lay.off(d, f"{which}.addr")
        v = g.load(win, off, I32, align=4 if off % 4 == 0 else 1)
        mask = wire32(net.netmask.packed)
        eq = b.icmp_unsigned("==", b.and_(v, I32(mask)), I32(wire32(net.network_address.packed)))
        rc.require(xor_neg(rc, eq, o.negated))
    elif o.name in TUPLE_PORT:
        d, which = TUPLE_PORT[o.name]
        port = g.be16(win, lay.off(d, f"{which}.port"))
        lo, hi = int(o.value.lo), int(o.value.hi)
        inside = b.and_(b.icmp_unsigned(">=", port, I32(lo)), b.icmp_unsigned("<=", port, I32(hi)))
        rc.require(xor_neg(rc, inside, o.negated))
    else:  # pragma: no cover - unsupported() refused it
        raise AssertionError(o.name)


def _unsupported(match: Match, rule: Rule) -> str | None:
    for o in match.options:
        if match.module == "conntrack" and o.name not in SUPPORTED:
            return f"conntrack option --{o.name} not compiled (it needs the kernel's HZ)"
        if o.name in TUPLE_ADDR and getattr(o.value.addr, "version", 4) != 4:
            return "IPv6 conntrack addresses are not compiled yet"
    return None


@register
class Conntrack:
    module = "conntrack"
    nf_only = True  # reads skb->_nfct: exact only where conntrack already ran

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        return _unsupported(match, rule)

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        emit_ct(rc, match)


@register
class State:
    module = "state"
    nf_only = True

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        emit_ct(rc, match)

