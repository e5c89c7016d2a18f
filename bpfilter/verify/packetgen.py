"""Packets aimed at a generated ruleset: every rule's edges and negations, plus noise.

Uniform random packets almost never hit a /28 or a single port, so for each
rule we build packets that satisfy all its conditions (at the edges: first and
last address of a prefix, both ends of a port range) and, for each condition,
packets that violate just that one (the address one below/above the prefix,
port range bound ±1, the other ICMP code, one TCP flag flipped, ...).  For a
rule in a user chain, the conditions of a rule jumping there are applied
first so the packet can actually reach it.  Random packets built from the
same anchors fill the rest of the budget.  Same seed, same packets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from bpfilter.verify.packets import (
    IP6OPT_PADN_4,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PacketSpec,
    ip_datagrams,
    ipv4_option_ra,
    ipv4_option_rr,
    tcp_options,
)
from bpfilter.verify.router import PLAN4, AddressPlan, plan_for
from bpfilter.verify.rulegen import BUILTINS, ICMP_ANY, GenRule, GenRuleset

PROTOS = {4: (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47, 132),
          6: (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, 47, 132)}
BASE_ICMP = {4: ((8, 0), (0, 0), (3, 3), (3, 1), (11, 0), (5, 1), (13, 0)),
             6: ((128, 0), (129, 0), (1, 4), (1, 0), (3, 0), (2, 0), (4, 1))}
OTHER_ICMP_TYPES = {4: (0, 3, 4, 5, 8, 11, 12, 13), 6: (1, 2, 3, 4, 128, 129)}
CONDITIONS = ("proto", "src", "dst", "src_range", "dst_range", "sport", "dport", "multiport",
              "icmp", "tcp_flags", "fragment", "length", "out_iface")
TARGETED_ROUNDS = 4


@dataclass
class Draft:
    """A packet being shaped: plain fields, turned into a PacketSpec at the end."""

    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    tcp_flags: int
    icmp_type: int
    icmp_code: int
    fragment: str | None
    length: int
    path: str  # "INPUT" or "FORWARD": where dst must lead
    plan: AddressPlan = PLAN4

    def spec(self, rng: random.Random, note: str) -> PacketSpec:
        extra: dict[str, object] = {}
        v4 = self.plan.family == 4
        roll = rng.random()
        if roll < 0.04 and v4:
            extra["ip_options"] = ipv4_option_rr()
        elif roll < 0.06 and v4:
            extra["ip_options"] = ipv4_option_ra()
        elif roll < 0.06:  # IPv6: an extension header before the L4 one
            extra["ip_options"] = IP6OPT_PADN_4
        if self.proto == IPPROTO_TCP and rng.random() < 0.2:
            extra["tcp_opts"] = tcp_options(1460, rng.choice((None, 7)), rng.random() < 0.5)
        if self.fragment is None and self.length == 0 and rng.random() < 0.02 and \
                self.proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP):
            extra["truncate"] = rng.choice((4, 8, 12)) if self.proto == IPPROTO_TCP else 4
        if self.fragment is not None and self.proto == IPPROTO_TCP and rng.random() < 0.2 \
                and v4:  # (IPv6 would need the tag option inside the fragmentable part)
            extra["first_frag_l4"] = 8
        return PacketSpec(
            src=self.plan.text(self.src), dst=self.plan.text(self.dst),
            proto=self.proto, sport=self.sport, dport=self.dport, tcp_flags=self.tcp_flags,
            icmp_type=self.icmp_type, icmp_code=self.icmp_code, fragment=self.fragment,
            length=self.length, ttl=rng.choice((64, 64, 64, 2, 255)), df=rng.random() < 0.3,
            note=note, **extra)  # type: ignore[arg-type]


def _iface_matches(pattern: str, name: str) -> bool:
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


def _edge_values(lo: int, hi: int, inside: bool, lo_bound: int, hi_bound: int,
                 rng: random.Random) -> list[int]:
    """Values at the edges of [lo, hi] (inside) or just beyond them (outside), shuffled."""
    if inside:
        values = [v for v in (lo, hi, rng.randint(lo, hi)) if lo_bound <= v <= hi_bound]
    else:
        values = [v for v in (lo - 1, hi + 1) if lo_bound <= v <= hi_bound]
        values += [v for v in (lo_bound, hi_bound) if not lo <= v <= hi]
    rng.shuffle(values)
    return values


def _in(x: int, lo: int, hi: int) -> bool:
    return lo <= x <= hi


def _holds(d: Draft, rule: GenRule, cond: str) -> bool | None:
    """Does condition ``cond`` of ``rule`` hold for draft ``d``? None when unknown."""
    v = getattr(rule, cond)
    if cond == "proto":
        return (d.proto == v.value) != v.negated
    if cond in ("src", "dst"):
        addr, mask = v.value
        return ((getattr(d, cond) & mask) == addr) != v.negated
    if cond in ("src_range", "dst_range"):
        return _in(getattr(d, cond[:3]), *v.value) != v.negated
    if cond in ("sport", "dport"):
        return _in(getattr(d, cond), *v.value) != v.negated
    if cond == "multiport":
        option, ranges, negated = v
        ports = {"dports": (d.dport,), "sports": (d.sport,)}.get(option, (d.sport, d.dport))
        return any(_in(p, lo, hi) for p in ports for lo, hi in ranges) != negated
    if cond == "icmp":
        itype, code = v.value
        if itype == ICMP_ANY:
            return not v.negated
        return (d.icmp_type == itype and code in (None, d.icmp_code)) != v.negated
    if cond == "tcp_flags":
        mask, comp = v.value
        return ((d.tcp_flags & mask) == comp) != v.negated
    if cond == "fragment":
        return (d.fragment in ("middle", "last")) == v
    if cond == "length":
        return None if not d.length else _in(d.length, *v.value) != v.negated
    if cond == "out_iface" and d.path == "FORWARD":
        name = d.plan.out_iface(d.dst)
        return _iface_matches(v.value, name) != v.negated
    return None


class PacketGenerator:
    """Packets for one `GenRuleset`; `generate(budget)` returns tagged PacketSpecs."""

    def __init__(self, ruleset: GenRuleset, seed: int) -> None:
        self.ruleset = ruleset
        self.plan = plan_for(ruleset.family)
        self.family = ruleset.family
        self.rng = random.Random(seed)
        self.reach = ruleset.reachable_from()

    # -- building blocks ---------------------------------------------------------------
    def _base(self, path: str) -> Draft:
        rng, anchors = self.rng, self.ruleset.anchors
        src = rng.choice(anchors["src"]) ^ rng.choice((0, 0, 1, 0xFF, rng.getrandbits(16)))
        if not self.plan.usable_source(src):
            src = rng.choice(anchors["src"])
        if path == "INPUT":
            dst = rng.choice(anchors["local"]) ^ rng.choice((0, 1, rng.getrandbits(8)))
        else:
            dst = rng.choice(anchors[rng.choice(("fwd0", "fwd1"))]) ^ rng.choice((0, 1, 0xFF))
            if not self._dst_ok(dst, path):
                dst = rng.choice(anchors["fwd0"])
        proto = rng.choice(PROTOS[self.family])
        itype, icode = rng.choice(BASE_ICMP[self.family])
        return Draft(src, dst, proto, rng.choice(anchors["port"]), rng.choice(anchors["port"]),
                     rng.choice((0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x01, 0x00, 0x3F, 0xC2)),
                     itype, icode, None, 0, path, self.plan)

    def _dst_ok(self, dst: int, path: str) -> bool:
        if not self.plan.usable_destination(dst):
            return False
        return self.plan.is_local(dst) == (path == "INPUT")

    def _addresses(self, addr: int, mask: int, inside: bool, ok: Callable[[int], bool]
                   ) -> int | None:
        rng, width = self.rng, self.plan.bits
        full = (1 << width) - 1
        free = ~mask & full
        contiguous = (free + 1) & free == 0
        if inside:
            cands = [addr, addr | free, addr | (rng.getrandbits(width) & free)]
        elif contiguous and mask:
            cands = [(addr - 1) & full, ((addr | free) + 1) & full]
        else:
            bits = [b for b in range(width) if mask >> b & 1]
            cands = [addr ^ (1 << rng.choice(bits)) for _ in range(3)] if bits else []
        rng.shuffle(cands)
        return next((c for c in cands if ok(c)), None)

    def _apply(self, draft: Draft, rule: GenRule, cond: str, want: bool) -> None:
        """Make ``draft`` satisfy (``want``) or violate condition ``cond`` of ``rule``.

        A draft that already does is left alone, so conditions applied earlier
        (to reach the rule, to dodge earlier rules) survive where they can.
        """
        rng = self.rng
        value = getattr(rule, cond)
        if value is None or _holds(draft, rule, cond) == want:
            return
        src_ok = self.plan.usable_source
        dst_ok = lambda a: self._dst_ok(a, draft.path)  # noqa: E731
        if cond == "proto":
            match = want != value.negated
            draft.proto = value.value if match else rng.choice(
                [p for p in PROTOS[self.family] if p != value.value])
        elif cond in ("src", "dst"):
            addr, mask = value.value
            got = self._addresses(addr, mask, want != value.negated,
                                  src_ok if cond == "src" else dst_ok)
            if got is not None:
                setattr(draft, cond, got)
        elif cond in ("src_range", "dst_range"):
            lo, hi = value.value
            ok = src_ok if cond == "src_range" else dst_ok
            top = (1 << self.plan.bits) - 1
            for v in _edge_values(lo, hi, want != value.negated, 0, top, rng):
                if ok(v):
                    setattr(draft, cond[:3], v)
                    break
        elif cond in ("sport", "dport"):
            lo, hi = value.value
            vals = _edge_values(lo, hi, want != value.negated, 0, 65535, rng)
            if vals:
                setattr(draft, cond, vals[0])
        elif cond == "multiport":
            option, ranges, negated = value
            field_name = {"dports": "dport", "sports": "sport"}.get(option,
                                                                     rng.choice(("sport", "dport")))
            if want != negated:
                lo, hi = rng.choice(ranges)
                setattr(draft, field_name, rng.choice((lo, hi)))
            else:
                outside = [v for lo, hi in ranges for v in (lo - 1, hi + 1)
                           if 0 <= v <= 65535 and not any(a <= v <= b for a, b in ranges)]
                if outside and option == "ports":  # either port may match: move both out
                    draft.sport, draft.dport = rng.choice(outside), rng.choice(outside)
                elif outside:
                    setattr(draft, field_name, rng.choice(outside))
        elif cond == "icmp":
            itype, code = value.value
            if itype == ICMP_ANY:
                return  # matches every ICMP packet: nothing to aim at
            if want != value.negated:
                draft.icmp_type = itype
                draft.icmp_code = code if code is not None else rng.choice((0, 1, 3, 15))
            elif code is not None and rng.random() < 0.6:
                draft.icmp_type, draft.icmp_code = itype, (code + rng.choice((1, -1))) % 256
            else:
                draft.icmp_type = rng.choice([t for t in OTHER_ICMP_TYPES[self.family]
                                              if t != itype])
        elif cond == "tcp_flags":
            mask, comp = value.value
            flags = (rng.getrandbits(8) & ~mask) | comp
            if want == value.negated:
                flags ^= 1 << rng.choice([b for b in range(8) if mask >> b & 1])
            draft.tcp_flags = flags & 0xFF
        elif cond == "fragment":
            nonfirst = want == value  # -f (True) matches non-first fragments
            draft.fragment = rng.choice(("middle", "last")) if nonfirst else \
                rng.choice((None, "first", "all"))
        elif cond == "length":
            lo, hi = value.value
            vals = _edge_values(lo, hi, want != value.negated, 20, 1500, rng)
            draft.fragment = None
            if vals:
                draft.length = vals[0]
        elif cond == "out_iface" and draft.path == "FORWARD":
            good = [n for n in ("out0", "out1") if _iface_matches(value.value, n) != value.negated]
            names = good if want else [n for n in ("out0", "out1") if n not in good]
            if names:
                key = "fwd0" if rng.choice(names) == "out0" else "fwd1"
                draft.dst = rng.choice(self.ruleset.anchors[key])

    def _callers(self, chain: str) -> list[GenRule]:
        return [r for r in self.ruleset.rules if r.target == chain]

    def _reach(self, draft: Draft, chain: str, depth: int = 0) -> None:
        """Apply the conditions of a rule jumping to ``chain`` (and its callers')."""
        callers = self._callers(chain)
        if chain in BUILTINS or not callers or depth > 3:
            return
        caller = self.rng.choice(callers)
        self._reach(draft, caller.chain, depth + 1)
        for cond in CONDITIONS:
            self._apply(draft, caller, cond, True)

    def _avoid_earlier(self, draft: Draft, rule: GenRule, used: list[str],
                       violated: str | None) -> None:
        """Make earlier rules of the chain that would catch the packet miss it.

        Preferably through a condition ``rule`` does not use; ``rule``'s own
        conditions are then applied again (they win any conflict).
        """
        for earlier in self.ruleset.rules_of(rule.chain):
            if earlier is rule:
                return
            conds = [c for c in CONDITIONS if getattr(earlier, c) is not None]
            if not conds or not all(_holds(draft, earlier, c) for c in conds):
                continue
            free = [c for c in conds if c not in used] or conds
            self._apply(draft, earlier, self.rng.choice(free), False)
            for cond in used:
                self._apply(draft, rule, cond, cond != violated)

    def _path_for(self, chain: str) -> str:
        paths = sorted(self.reach.get(chain) or BUILTINS)
        return self.rng.choice(paths)

    def _fits(self, draft: Draft) -> bool:
        """Is the requested length reachable for this packet (not below its natural size)?"""
        if not draft.length:
            return True
        probe = replace(draft.spec(random.Random(0), ""), length=0, truncate=None,
                        ip_options=b"", tcp_opts=b"").with_tags(0)
        return len(ip_datagrams(probe)[0]) <= draft.length

    # -- public -----------------------------------------------------------------------
    def targeted(self, index: int, rule: GenRule) -> list[PacketSpec]:
        """Packets that satisfy ``rule`` at its edges, and that violate each condition."""
        out = []
        used = [c for c in CONDITIONS if getattr(rule, c) is not None]
        plans = [(None, f"rule {index} match")] * 4 + \
            [(c, f"rule {index} not {c}") for c in used for _ in range(3)]
        for violated, note in plans:
            draft = self._base(self._path_for(rule.chain))
            self._reach(draft, rule.chain)
            for cond in CONDITIONS:
                self._apply(draft, rule, cond, cond != violated)
            self._avoid_earlier(draft, rule, used, violated)
            if not self._fits(draft):
                draft.length = 0
            out.append(draft.spec(self.rng, note))
        return out

    def random_packet(self) -> PacketSpec:
        draft = self._base(self.rng.choice(BUILTINS))
        roll = self.rng.random()
        if roll < 0.05:
            draft.fragment = self.rng.choice(("all", "first", "middle", "last"))
        elif roll < 0.12:
            draft.length = self.rng.choice((40, 64, 100, 576, 1000, 1500))
            if not self._fits(draft):
                draft.length = 0
        return draft.spec(self.rng, "random")

    def generate(self, frames: int, first_tag: int = 1, first_ident: int = 1
                 ) -> list[PacketSpec]:
        """About ``frames`` frames: targeted packets (rounds of them, up to about half
        the budget; sampled if even one round is too many), then random ones.

        Tags are consecutive from ``first_tag``; IP idents count up from
        ``first_ident`` (mod 2**16), so fragments of different packets never mix.
        """
        targeted: list[PacketSpec] = []
        for _ in range(TARGETED_ROUNDS):
            targeted += [p for i, r in enumerate(self.ruleset.rules, 1)
                         for p in self.targeted(i, r)]
            if not self.ruleset.rules or sum(p.frame_count for p in targeted) > frames * 0.5:
                break
        if sum(p.frame_count for p in targeted) > frames * 0.8:
            targeted = self.rng.sample(targeted, k=int(frames * 0.8) // 2)
        specs = list(targeted)
        count = sum(p.frame_count for p in specs)
        while count < frames:
            spec = self.random_packet()
            specs.append(spec)
            count += spec.frame_count
        self.rng.shuffle(specs)
        out, tag = [], first_tag
        for n, spec in enumerate(specs):
            spec = replace(spec, ident=(first_ident + n) % 0xFFFF + 1).with_tags(tag)
            tag += spec.frame_count
            out.append(spec)
        return out
