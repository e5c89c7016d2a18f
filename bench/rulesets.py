"""Seeded ruleset generators for the benchmarks (and the lookup tests).

`classbench(n)`: ClassBench-like 5-tuple ACLs (Taylor & Turner's ACL seed statistics,
approximated): prefixes on both addresses drawn from a shared pool of nested networks
(so rules overlap the way real ACLs do), protocol mostly TCP/UDP, source port mostly
any, destination port exact / well-known range / any, mixed ACCEPT/DROP, first match
wins, policy ACCEPT. `blocklist(n)`: n distinct /32 sources dropped (fail2ban style)
plus a few service rules. `probe_packets` picks packets whose first match is the first,
middle and last rule, and one that matches nothing, using the same reference
classification as the tests.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
TAIL = "COMMIT\n"
# Local address of the benchmark/test host: rules and probes target it.
LOCAL_NET = (10 << 24) | (200 << 16)  # 10.200.0.0/16


@dataclass(frozen=True)
class Rule5:
    """One generated rule: [lo, hi] per field (ports None when the rule has no port match)."""

    src: tuple[int, int]  # (network, prefix length)
    dst: tuple[int, int]
    proto: int  # 0 = any
    sport: tuple[int, int] | None
    dport: tuple[int, int] | None
    verdict: str

    def line(self, chain: str = "INPUT") -> str:
        parts = [f"-A {chain}"]
        for flag, (net, plen) in (("-s", self.src), ("-d", self.dst)):
            if plen:
                parts.append(f"{flag} {ipaddress.IPv4Address(net)}/{plen}")
        if self.proto:
            name = {6: "tcp", 17: "udp", 1: "icmp"}.get(self.proto, str(self.proto))
            parts.append(f"-p {name}")
            if self.proto in (6, 17) and (self.sport or self.dport):
                parts.append(f"-m {name}")
                for opt, pr in (("--sport", self.sport), ("--dport", self.dport)):
                    if pr:
                        parts.append(f"{opt} {pr[0]}" if pr[0] == pr[1] else
                                     f"{opt} {pr[0]}:{pr[1]}")
        parts.append(f"-j {self.verdict}")
        return " ".join(parts)

    def matches(self, src: int, dst: int, proto: int, sport: int, dport: int) -> bool:
        """Reference semantics for well-formed TCP/UDP/other first fragments."""
        for addr, (net, plen) in ((src, self.src), (dst, self.dst)):
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            if addr & mask != net:
                return False
        if self.proto and proto != self.proto:
            return False
        for v, pr in ((sport, self.sport), (dport, self.dport)):
            if pr and not pr[0] <= v <= pr[1]:
                return False
        return True


def _prefix(rng: random.Random, pool: list[int], lens: list[tuple[int, float]]) -> tuple[int, int]:
    plen = rng.choices([p for p, _ in lens], [w for _, w in lens])[0]
    if plen == 0:
        return 0, 0
    base = rng.choice(pool)
    # extend the pool network with random host bits, then cut to the prefix length
    addr = base | rng.getrandbits(16)
    mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
    return addr & mask, plen


SRC_LENS = [(0, 0.15), (8, 0.03), (16, 0.07), (20, 0.05), (24, 0.2), (28, 0.1), (32, 0.4)]
DST_LENS = [(0, 0.05), (16, 0.05), (24, 0.25), (28, 0.1), (30, 0.05), (32, 0.5)]
WELL_KNOWN = [20, 21, 22, 23, 25, 53, 80, 110, 123, 143, 161, 389, 443, 445, 993, 995,
              1433, 1521, 3306, 3389, 5432, 5060, 8080, 8443]


def classbench(n: int, seed: int = 1) -> list[Rule5]:
    """n ClassBench-like rules (distinct, in priority order)."""
    rng = random.Random(seed)
    n_pool = max(4, n // 40)
    src_pool = [(rng.randrange(1, 224) << 24) | (rng.getrandbits(8) << 16)
                for _ in range(n_pool)]
    dst_pool = [LOCAL_NET] + [(rng.randrange(1, 224) << 24) | (rng.getrandbits(8) << 16)
                              for _ in range(n_pool // 4)]
    seen: set[Rule5] = set()
    out: list[Rule5] = []
    while len(out) < n:
        src = _prefix(rng, src_pool, SRC_LENS)
        dst = _prefix(rng, dst_pool, DST_LENS)
        while src[1] == 0 and dst[1] == 0:  # real ACLs have no match-almost-all rules
            dst = _prefix(rng, dst_pool, DST_LENS)
        proto = rng.choices([6, 17, 1, 0], [0.65, 0.2, 0.05, 0.1])[0]
        sport = dport = None
        if proto in (6, 17):
            r = rng.random()
            sport = None if r < 0.85 else ((1024, 65535) if r < 0.92 else
                                           (p := rng.randrange(1, 65536), p))
            r = rng.random()
            if r < 0.4:
                p = rng.choice(WELL_KNOWN)
                dport = (p, p)
            elif r < 0.55:
                dport = rng.choice([(1024, 65535), (0, 1023), (6000, 6063), (49152, 65535)])
            elif r < 0.7:
                p = rng.randrange(1024, 65536)
                dport = (p, p)
            elif r < 0.75:
                lo = rng.randrange(1, 65000)
                dport = (lo, lo + rng.randrange(1, 500))
        rule = Rule5(src, dst, proto, sport, dport, rng.choices(["ACCEPT", "DROP"],
                                                                [0.55, 0.45])[0])
        if rule not in seen:
            seen.add(rule)
            out.append(rule)
    return out


def blocklist(n: int, seed: int = 1) -> list[Rule5]:
    """n distinct /32 sources dropped, then three service rules."""
    rng = random.Random(seed)
    addrs: set[int] = set()
    while len(addrs) < n:
        addrs.add((rng.randrange(1, 224) << 24) | rng.getrandbits(24))
    out = [Rule5((a, 32), (0, 0), 0, None, None, "DROP") for a in sorted(addrs, key=hash)]
    for p in (22, 80, 443):
        out.append(Rule5((0, 0), (LOCAL_NET, 16), 6, None, (p, p), "ACCEPT"))
    return out


def restore_text(rules: list[Rule5], chain: str = "INPUT") -> str:
    return HEAD + "".join(r.line(chain) + "\n" for r in rules) + TAIL


def first_match(rules: list[Rule5], pkt: tuple[int, int, int, int, int]) -> int | None:
    for i, r in enumerate(rules):
        if r.matches(*pkt):
            return i
    return None


def _point_in(rng: random.Random, r: Rule5) -> tuple[int, int, int, int, int]:
    def addr(net: int, plen: int) -> int:
        return net | (rng.getrandbits(32 - plen) if plen < 32 else 0)

    proto = r.proto or rng.choice([6, 17])
    sport = rng.randint(*r.sport) if r.sport else rng.randrange(1024, 65536)
    dport = rng.randint(*r.dport) if r.dport else rng.randrange(1, 65536)
    return addr(*r.src), addr(*r.dst), proto, sport, dport


def probe_packets(rules: list[Rule5], seed: int = 7
                  ) -> dict[str, tuple[tuple[int, int, int, int, int], int | None]]:
    """{"first"|"middle"|"last"|"none": (packet 5-tuple, index of its first match)}."""
    rng = random.Random(seed)
    out: dict[str, tuple[tuple[int, int, int, int, int], int | None]] = {}
    n = len(rules)
    for name, want in (("first", 0), ("middle", n // 2), ("last", n - 1)):
        for k in [*range(want, -1, -1)][:2000]:
            pkt = None
            for _ in range(20):
                cand = _point_in(rng, rules[k])
                if first_match(rules, cand) == k:
                    pkt = cand
                    break
            if pkt is not None:
                out[name] = (pkt, k)
                break
    for _ in range(10000):
        cand = (rng.getrandbits(32), rng.getrandbits(32), 17, rng.randrange(1, 65536),
                rng.randrange(1, 65536))
        if first_match(rules, cand) is None:
            out["none"] = (cand, None)
            break
    return out
