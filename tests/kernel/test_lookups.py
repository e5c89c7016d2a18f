"""Tree lookups in the kernel: same verdicts and counters as the linear walk.

Two references: the linear program (every rule emitted as code) for rulesets small
enough to compile that way, with truncated headers and fragments mixed in (hotdrop
and port-less packets); and bench's own first-match semantics for 5k-rule rulesets.
Runs through BPF_PROG_TEST_RUN inside a namespace where every address is local, so
xdp/tc send every probe to INPUT, where the rules are.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from bench.measure import frame, lab, parse_table
from bench.rulesets import Rule5, blocklist, classbench, first_match, restore_text
from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.ir import Family
from bpfilter.verify import packets as P
from bpfilter.verify.netns import call_in_netns
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel
FLAVORS = ("xdp", "tc", "nf")
PEER_MAC = "02:00:00:00:00:02"


@pytest.fixture(scope="module")
def blab():
    ok, why = bpf_available()
    require_kernel(ok, why)
    with lab() as lb:
        yield lb


def _addr(rng: random.Random, net: int, plen: int) -> str:
    return str(ipaddress.IPv4Address(net | (rng.getrandbits(32 - plen) if plen < 32 else 0)))


def odd_datagrams(rules: list[Rule5], n: int, seed: int) -> list[bytes]:
    """Datagrams near the rules: well-formed, truncated L4 headers, fragments."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.choice(rules)
        src, dst = _addr(rng, *r.src), _addr(rng, *r.dst)
        proto = r.proto or rng.choice([6, 17, 1])
        sport = rng.randint(*r.sport) if r.sport else rng.randrange(65536)
        dport = rng.randint(*r.dport) if r.dport else rng.randrange(65536)
        if proto == 6:
            l4 = P.tcp_segment(src, dst, sport, dport, 0x02, b"x")
        elif proto == 17:
            l4 = P.udp_datagram(src, dst, sport, dport, b"x")
        else:
            l4 = P.icmp_message(8, 0, payload=b"x")
        kind = rng.random()
        frag = 0
        if kind < 0.1:
            l4 = l4[:rng.randrange(0, 8 if proto == 17 else 20)]  # header cut short
        elif kind < 0.2:
            frag = rng.choice([1, 2, 185])  # non-first fragments (1: tcp "evil" offset)
        out.append(P.ipv4_header(src, dst, proto, len(l4), frag_offset=frag) + l4)
    return out


def run_all(blab, flavor: str, text: str, datagrams: list[bytes], **kw):
    table = parse_table(text)

    def body():
        progs = compile_table(table, Family.IPV4, flavor, **kw)  # type: ignore[arg-type]
        hook = "INPUT" if flavor == "nf" else "ingress"
        with LoadedTable(progs) as lt:
            verdicts = [lt.run(hook, P.ether(blab.mac, PEER_MAC, P.ETH_P_IP, d),
                               blab.ifindex).verdict for d in datagrams]
            return verdicts, lt.all_counters(), [c.name for p in progs
                                                  for c in p.map_contents]

    return call_in_netns(blab.ns, body)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("gen", [classbench, blocklist])
def test_lookup_equals_linear_walk(blab, flavor: str, gen) -> None:
    rules = gen(250, seed=4)
    text = restore_text(rules)
    datagrams = odd_datagrams(rules, 600, seed=4)
    v_lin, c_lin, maps_lin = run_all(blab, flavor, text, datagrams, lookups=False,
                                     min_run=10**9)
    v_lk, c_lk, maps_lk = run_all(blab, flavor, text, datagrams)
    assert maps_lin == [] and maps_lk, "the lookup must actually be used"
    bad = [(i, v_lin[i], v_lk[i]) for i in range(len(datagrams)) if v_lin[i] != v_lk[i]]
    assert not bad, f"{len(bad)} verdicts differ, first: {bad[:3]}"
    assert c_lk == c_lin
    assert {"ACCEPT", "DROP"} <= set(v_lk)


@pytest.mark.parametrize("flavor", ["xdp", "nf"])
def test_large_ruleset_matches_reference(blab, flavor: str) -> None:
    rules = classbench(5000, seed=11)
    rng = random.Random(11)
    pkts = []
    for _ in range(400):
        r = rng.choice(rules)
        pkts.append((int(ipaddress.IPv4Address(_addr(rng, *r.src))),
                     int(ipaddress.IPv4Address(_addr(rng, *r.dst))),
                     r.proto or rng.choice([6, 17]),
                     rng.randint(*r.sport) if r.sport else rng.randrange(65536),
                     rng.randint(*r.dport) if r.dport else rng.randrange(65536)))
    table = parse_table(restore_text(rules))

    def body():
        progs = compile_table(table, Family.IPV4, flavor)  # type: ignore[arg-type]
        hook = "INPUT" if flavor == "nf" else "ingress"
        with LoadedTable(progs) as lt:
            out = []
            for p in pkts:
                fr = frame(p, blab.mac)
                out.append(lt.run(hook, fr, blab.ifindex).verdict)
            return out, lt.all_counters(), sum(c.count for pr in progs
                                               for c in pr.map_contents)

    verdicts, counters, entries = call_in_netns(blab.ns, body)
    assert entries > 0
    want_counts: dict[int, int] = {}
    for p, v in zip(pkts, verdicts, strict=True):
        k = first_match(rules, p)
        assert v == ("ACCEPT" if k is None else rules[k].verdict), (p, k)
        want_counts[k] = want_counts.get(k, 0) + 1
    for k, n in want_counts.items():
        got = counters[("INPUT", None if k is None else k + 1)][0]
        assert got == n, f"rule {k}: counted {got}, expected {n}"


@pytest.mark.parametrize("flavor", ["xdp", "nf"])
def test_in_place_replace(blab, flavor: str) -> None:
    """One-rule changes written into the live maps give the new ruleset's verdicts,
    and the replaced rule keeps counting in its own slot."""
    from bpfilter.backend.lookup import plan_lookups
    from bpfilter.backend.lookup_update import LiveLookup
    from bpfilter.backend.plan import plan_table
    from bpfilter.frontend.parser import parse_restore

    rules = classbench(1500, seed=21)
    fresh = classbench(1700, seed=99)[1500:]
    table = parse_table(restore_text(rules))
    rng = random.Random(21)

    def body():
        progs = compile_table(table, Family.IPV4, flavor)  # type: ignore[arg-type]
        hook = "INPUT" if flavor == "nf" else "ingress"
        # the same (deterministic) plan compile_table made: the trees behind the maps
        (lk,) = plan_lookups(table, plan_table(table, Family.IPV4).slot).values()
        with LoadedTable(progs) as lt:
            live = LiveLookup(lk, lt.maps[lk.nodes_map], lt.maps[lk.rules_map])
            changed = []
            for new in fresh:
                pos = rng.randrange(len(rules))
                text = HEAD1 + new.line() + "\nCOMMIT\n"
                (rule,) = parse_restore(text, family=Family.IPV4).table("filter").chain(
                    "INPUT").rules
                if live.replace(pos, rule):
                    rules[pos] = new
                    changed.append(pos)
                if len(changed) == 25:
                    break
            pkts = []
            for pos in changed * 8 + [rng.randrange(len(rules)) for _ in range(200)]:
                r = rules[pos]
                pkts.append((int(ipaddress.IPv4Address(_addr(rng, *r.src))),
                             int(ipaddress.IPv4Address(_addr(rng, *r.dst))),
                             r.proto or rng.choice([6, 17]),
                             rng.randint(*r.sport) if r.sport else rng.randrange(65536),
                             rng.randint(*r.dport) if r.dport else rng.randrange(65536)))
            verdicts = [lt.run(hook, frame(p, blab.mac), blab.ifindex).verdict for p in pkts]
            return changed, pkts, verdicts, lt.all_counters()

    changed, pkts, verdicts, counters = call_in_netns(blab.ns, body)
    assert len(changed) >= 10
    hits: dict[int | None, int] = {}
    for p, v in zip(pkts, verdicts, strict=True):
        k = first_match(rules, p)
        assert v == ("ACCEPT" if k is None else rules[k].verdict), (p, k)
        hits[k] = hits.get(k, 0) + 1
    for k, n in hits.items():
        assert counters[("INPUT", None if k is None else k + 1)][0] == n


HEAD1 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"

