"""Seeded random rulesets and packets: BPF verdicts and counters against a small
Python model of iptables' rule walk (ipt_do_table + the match functions).

The model reads the same IR the backend compiles, so a mismatch points at codegen.
Replay a failure with its seed: ``pytest -k 'random and seed7'``; run more seeds with
``BPFILTER_RANDOM_SEEDS=300`` (300 seeds passed here on xdp and nf, 100 on tc).
"""

from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass

import pytest

from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Rule, Table
from bpfilter.verify import packets as P
from tests.kernel._matchers_lab import (
    LOCAL,
    Lab,
    ip,
    lab,  # noqa: F401  (fixture)
    need,
    ruleset,
    run,
    tot_len,
    truncated,
)

pytestmark = pytest.mark.kernel
SEEDS = range(int(os.environ.get("BPFILTER_RANDOM_SEEDS", "30")))  # more: set the env var
SRCS = ["172.16.5.9", "10.1.2.3", "10.1.9.3"]
PORTS = [22, 80, 443, 1024, 5000]


@dataclass(frozen=True)
class Pkt:
    src: str
    proto: int
    sport: int = 0
    dport: int = 0
    flags: int = 0
    icmp: tuple[int, int] = (8, 0)
    frag: int = 0  # fragment offset in 8-byte units
    trunc: int | None = None  # L4 bytes kept

    def datagram(self) -> bytes:
        if self.trunc is not None:
            return truncated(self.proto, self.trunc, src=self.src, frag=self.frag * 8)
        if self.proto == P.IPPROTO_TCP:
            l4 = P.tcp_segment(self.src, LOCAL, self.sport, self.dport, self.flags, b"pay")
        elif self.proto == P.IPPROTO_UDP:
            l4 = P.udp_datagram(self.src, LOCAL, self.sport, self.dport, b"pay")
        else:
            l4 = P.icmp_message(*self.icmp, payload=b"pay")
        return ip(self.proto, l4, src=self.src, frag=self.frag * 8)


# --- the model -----------------------------------------------------------------------
HOTDROP = "hotdrop"


def l4_len(p: Pkt) -> int:
    return len(p.datagram()) - 20


def l4(p: Pkt) -> bytes:
    """The L4 bytes as sent (a truncated packet carries filler, not p.sport/p.dport)."""
    return p.datagram()[20:].ljust(20, b"\0")


def ports(p: Pkt) -> tuple[int, int]:
    b = l4(p)
    return int.from_bytes(b[0:2], "big"), int.from_bytes(b[2:4], "big")


def match_rule(rule: Rule, p: Pkt) -> bool | str:
    src = ipaddress.IPv4Address(p.src)
    for field, addr in ((rule.src, src), (rule.dst, ipaddress.IPv4Address(LOCAL))):
        if field is not None and field.value.contains(addr) == field.negated:
            return False
    if rule.in_iface is not None:
        raise AssertionError("the generator makes no -i rules")
    if rule.protocol is not None and rule.protocol.value:
        if (p.proto == rule.protocol.value) == rule.protocol.negated:
            return False
    if rule.fragment is not None and (p.frag != 0) != rule.fragment:
        return False
    for m in rule.matches:
        r = MATCHES[m.module](m, p)
        if r is not True:
            return r
    return True


def _in(v: int, lo: int, hi: int) -> bool:
    return lo <= v <= hi


def m_tcpudp(m, p: Pkt) -> bool | str:  # noqa: ANN001
    if p.frag:
        return HOTDROP if (p.frag == 1 and m.module == "tcp") else False
    if l4_len(p) < (20 if m.module == "tcp" else 8):
        return HOTDROP
    for o in m.options:
        if o.name in ("sport", "dport"):
            v = ports(p)[0 if o.name == "sport" else 1]
            if _in(v, o.value.lo, o.value.hi) == o.negated:
                return False
    for o in m.options:
        if o.name == "tcp-flags" and ((l4(p)[13] & o.value.mask) == o.value.value) == o.negated:
            return False
    return True


def m_multiport(m, p: Pkt) -> bool | str:  # noqa: ANN001
    if p.frag:
        return False
    if l4_len(p) < 4:
        return HOTDROP
    (o,) = m.options
    sp, dp = ports(p)
    which = {"sports": [sp], "dports": [dp], "ports": [sp, dp]}[o.name]
    hit = any(_in(v, r.lo, r.hi) for r in o.value for v in which)
    return hit != o.negated


def m_icmp(m, p: Pkt) -> bool | str:  # noqa: ANN001
    if p.frag:
        return False
    if l4_len(p) < 8:
        return HOTDROP
    (o,) = m.options
    t = o.value
    typ, code = l4(p)[0], l4(p)[1]
    hit = t.type == 0xFF or (typ == t.type and _in(code, t.code_min, t.code_max))
    return hit != o.negated


def m_length(m, p: Pkt) -> bool:  # noqa: ANN001
    (o,) = m.options
    return _in(len(p.datagram()), o.value.lo, o.value.hi) != o.negated


MATCHES = {"tcp": m_tcpudp, "udp": m_tcpudp, "multiport": m_multiport, "icmp": m_icmp,
           "length": m_length}


def model(table: Table, p: Pkt, counters: dict) -> str:
    """ipt_do_table: first match wins, jump pushes a return point, goto does not."""
    n = len(p.datagram())

    def count(key: tuple) -> None:
        a, b = counters.get(key, (0, 0))
        counters[key] = (a + 1, b + n)

    stack: list[tuple[str, int]] = []
    chain, i = "INPUT", 0
    while True:
        rules = table.chain(chain).rules  # type: ignore[union-attr]
        if i >= len(rules):
            if not stack:
                count(("INPUT", None))
                return table.chain("INPUT").policy  # type: ignore[union-attr, return-value]
            chain, i = stack.pop()
            continue
        rule = rules[i]
        r = match_rule(rule, p)
        if r == HOTDROP:
            return "DROP"
        if not r:
            i += 1
            continue
        count((chain, i + 1))
        t = rule.target
        if t is None:
            i += 1
        elif t.name in ("ACCEPT", "DROP"):
            return t.name
        elif t.name == "RETURN":
            if not stack:
                count(("INPUT", None))
                return table.chain("INPUT").policy  # type: ignore[union-attr, return-value]
            chain, i = stack.pop()
        else:
            if not t.goto:
                stack.append((chain, i + 1))
            chain, i = t.name, 0


# --- generators ----------------------------------------------------------------------
def gen_rule(rnd: random.Random, level: int, nchains: int) -> str:
    parts: list[str] = []
    neg = lambda: "! " if rnd.random() < 0.3 else ""  # noqa: E731
    if rnd.random() < 0.4:
        parts.append(neg() + "-s " + rnd.choice(
            ["10.1.0.0/16", "172.16.5.9/32", "10.0.0.3/255.0.0.255", "10.1.2.0/24"]))
    proto = rnd.choice([None, "tcp", "udp", "icmp", "tcp", "udp"])
    if proto:
        pneg = rnd.random() < 0.15
        parts.append(("! " if pneg else "") + f"-p {proto}")
        if not pneg and proto in ("tcp", "udp") and rnd.random() < 0.7:
            which = rnd.choice(["--dport", "--sport"])
            a, b = sorted(rnd.sample(PORTS, 2))
            val = rnd.choice([str(a), f"{a}:{b}"])
            parts.append(f"{neg()}{which} {val}")
            if proto == "tcp" and rnd.random() < 0.4:
                parts.append(neg() + rnd.choice(["--syn", "--tcp-flags SYN,ACK ACK"]))
        elif not pneg and proto in ("tcp", "udp") and rnd.random() < 0.5:
            ports = ",".join(str(x) for x in rnd.sample(PORTS, 2))
            parts.append(f"-m multiport {neg()}{rnd.choice(['--dports', '--ports'])} {ports}")
        elif not pneg and proto == "icmp" and rnd.random() < 0.7:
            parts.append(neg() + "--icmp-type " + rnd.choice(["8", "3/1", "any", "0"]))
    if rnd.random() < 0.15:
        parts.append(rnd.choice(["-f", "! -f"]))
    if rnd.random() < 0.15:
        parts.append(f"-m length {neg()}--length {rnd.choice(['0:50', '51:100', '40'])}")
    targets = ["-j ACCEPT", "-j DROP", "", "-j RETURN"]
    targets += [f"-{rnd.choice('jg')} c{k}" for k in range(level + 1, nchains + 1)]
    parts.append(rnd.choice(targets))
    return " ".join(p for p in parts if p)


def gen_run(rnd: random.Random) -> list[str]:
    """8-12 rules differing in one exact value (runs.py turns them into a search),
    sometimes with duplicates and values the packets carry."""
    verdict = rnd.choice(["ACCEPT", "DROP"])
    n = rnd.randint(8, 12)
    if rnd.random() < 0.5:
        pool = [*SRCS, *(f"10.1.{k}.{k}" for k in range(20))]
        return [f"-s {rnd.choice(pool)}/32 -j {verdict}" for _ in range(n)]
    proto = rnd.choice(["tcp", "udp"])
    which = rnd.choice(["--dport", "--sport"])
    pool = [*PORTS, 772, *range(6000, 6020)]
    return [f"-p {proto} {which} {rnd.choice(pool)} -j {verdict}" for _ in range(n)]


def gen_ruleset(rnd: random.Random) -> str:
    nchains = rnd.randint(0, 3)
    lines = [f"-A INPUT {gen_rule(rnd, 0, nchains)}" for _ in range(rnd.randint(1, 8))]
    if rnd.random() < 0.5:
        at = rnd.randint(0, len(lines))
        lines[at:at] = [f"-A INPUT {r}" for r in gen_run(rnd)]
    for k in range(1, nchains + 1):
        lines += [f"-A c{k} {gen_rule(rnd, k, nchains)}" for _ in range(rnd.randint(0, 5))]
    chains = "".join(f":c{k} - [0:0]\n" for k in range(1, nchains + 1))
    return ruleset("\n".join(lines), {"INPUT": rnd.choice(["ACCEPT", "DROP"])}, chains)


def gen_packet(rnd: random.Random) -> Pkt:
    proto = rnd.choice([P.IPPROTO_TCP, P.IPPROTO_UDP, P.IPPROTO_ICMP])
    frag = rnd.choice([0, 0, 0, 0, 1, 2])
    trunc = rnd.choice([None] * 6 + [3, 6, 12])
    return Pkt(rnd.choice(SRCS), proto, rnd.choice(PORTS), rnd.choice(PORTS),
               rnd.choice([0x02, 0x10, 0x12]), rnd.choice([(8, 0), (3, 1), (3, 3), (0, 0)]),
               frag, trunc)


@pytest.mark.parametrize("flavor", ["xdp", "tc", "nf"])
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_random_rulesets_match_model(lab: Lab, flavor: str, seed: int) -> None:  # noqa: F811
    need("tcp", "udp", "icmp", "multiport", "length")
    rnd = random.Random(seed)
    text = gen_ruleset(rnd)
    table = parse_restore(text, family=Family.IPV4).table("filter")
    assert table is not None
    pkts = [gen_packet(rnd) for _ in range(24)]
    want_counters: dict = {}
    want = [model(table, p, want_counters) for p in pkts]
    got, counters = run(lab, flavor, text, [("INPUT", p.datagram()) for p in pkts])
    moved = {k: v for k, v in counters.items() if v != (0, 0)}
    for p, w, g in zip(pkts, want, got, strict=True):
        assert g == w, f"seed {seed} {flavor}: {p} -> {g}, model {w}\n{text}"
    assert moved == want_counters, f"seed {seed} {flavor}\n{text}"
    assert all(tot_len(p.datagram()) for p in pkts)
