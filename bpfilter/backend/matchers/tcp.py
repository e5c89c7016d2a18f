"""`-p tcp` / `-m tcp`: ports, --tcp-flags / --syn, --tcp-option (xt_tcpudp.c tcp_mt).

Values (frontend tcp.py): ports PortRange; tcp-flags ValueMask(value=comp, mask);
--syn arrives as that tcp-flags meaning; tcp-option int.

Kernel order: fragment check (offset 1 → hotdrop), 20-byte header or hotdrop, source
port, destination port, flags, then the option scan (doff*4 < 20 → hotdrop; options
not all inside the datagram → hotdrop).
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import header_guard, xor_neg
from bpfilter.backend.matchers._ports import PORT_OPTIONS, emit_ports
from bpfilter.backend.packet import L4_MAX
from bpfilter.ir import Match, Rule

TCP_FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10,
                 "URG": 0x20, "ECE": 0x40, "CWR": 0x80, "ALL": 0x3F, "NONE": 0}
SYN_MASK, SYN_CMP = 0x17, 0x02  # --syn = --tcp-flags FIN,SYN,RST,ACK SYN
TCPHDR = 20
OPTIONS = PORT_OPTIONS | {"tcp-flags", "syn", "tcp-option"}


def flag_bits(v: Any) -> int:
    """An int bitmask, or an iterable of flag names (libxt_tcp's names)."""
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        v = v.split(",")
    bits = 0
    for name in v:
        bits |= TCP_FLAG_BITS[str(name).upper()]
    return bits


def flags_mask_cmp(value: Any) -> tuple[int, int]:
    """(mask, comp) from the extension's --tcp-flags value."""
    if isinstance(value, tuple) and len(value) == 2:
        return flag_bits(value[0]), flag_bits(value[1])
    for m, c in (("mask", "value"), ("mask", "comp"), ("mask", "cmp")):
        if hasattr(value, m) and hasattr(value, c):
            return flag_bits(getattr(value, m)), flag_bits(getattr(value, c))
    raise TypeError(f"unknown --tcp-flags value {value!r}")


@register
class Tcp:
    module = "tcp"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in OPTIONS:
                return f"tcp option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return L4_MAX if match.get("tcp-option") else TCPHDR

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g = rc.gen
        header_guard(rc, TCPHDR, evil_frag=True)
        emit_ports(rc, match)
        for o in match.options:
            if o.name == "tcp-flags":
                mask, cmp_ = flags_mask_cmp(o.value)
            elif o.name == "syn":
                mask, cmp_ = SYN_MASK, SYN_CMP
            else:
                continue
            got = g.b.and_(g.u8(rc.pkt.l4, 13), I32(mask))
            rc.require(xor_neg(rc, g.b.icmp_unsigned("==", got, I32(cmp_)), o.negated))
        op = match.get("tcp-option")
        if op is not None:
            self._emit_option(rc, int(op.value), op.negated)

    def _emit_option(self, rc: RuleCtx, option: int, invert: bool) -> None:
        """tcp_find_option(), unrolled over the 40 option bytes with constant offsets:
        step j looks at byte j only when the previous option ended there (`nxt`). No
        variable stack index keeps the verifier's state pruning effective, and only
        `nxt` is live between steps (LLVM keeps the stack small)."""
        g, b, l4 = rc.gen, rc.gen.b, rc.pkt.l4
        hl = b.shl(b.lshr(g.u8(l4, 12), I32(4)), I32(2))
        g.branch_if(b.icmp_unsigned("<", hl, I32(TCPHDR)), rc.hotdrop, "doffok")
        optlen = b.sub(hl, I32(TCPHDR))
        # optlen == 0 → result is `invert` without reading; else all options must exist.
        nonempty = b.icmp_unsigned("!=", optlen, I32(0))
        short = b.and_(nonempty, b.icmp_unsigned("<", rc.pkt.l4_len, hl))
        g.branch_if(short, rc.hotdrop, "optsok")
        found, absent = g.block("optfound"), g.block("optabsent")
        nxt: ir.Value = I32(0)
        for j in range(L4_MAX - TCPHDR):
            step, skip = g.block(f"opt{j}"), g.block(f"optnext{j}")
            g.branch_if(b.icmp_unsigned(">=", I32(j), optlen), absent, f"optin{j}")
            b.cbranch(b.icmp_unsigned("==", nxt, I32(j)), step, skip)
            in_blk = b.block
            g.at(step)
            kind = g.u8(l4, TCPHDR + j)
            g.branch_if(b.icmp_unsigned("==", kind, I32(option)), found, f"optother{j}")
            size = g.u8(l4, TCPHDR + j + 1)  # the L4 buffer is L4_MAX + 4 bytes
            adv = b.select(b.icmp_unsigned("<", kind, I32(2)), I32(1),
                           b.select(b.icmp_unsigned("==", size, I32(0)), I32(1), size))
            new = b.add(I32(j), adv)
            step_end = b.block
            b.branch(skip)
            g.at(skip)
            phi = b.phi(I32)
            phi.add_incoming(nxt, in_blk)
            phi.add_incoming(new, step_end)
            nxt = phi
        b.branch(absent)
        cont = g.block("optok")
        g.at(found)
        b.branch(rc.fail if invert else cont)
        g.at(absent)
        b.branch(cont if invert else rc.fail)
        g.at(cont)
