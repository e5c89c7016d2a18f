"""`bpfilter bench FILE`: how fast your own ruleset runs, measured in the kernel.

    bpfilter bench FILE [--flavors xdp tc nf] [--packets 200] [--repeat 20000]
                        [--linear] [--json]

Parses FILE (iptables-save text), compiles its filter table per flavor (with the
lookups, and with --linear also as the plain linear walk for comparison), loads it
and runs packets through BPF_PROG_TEST_RUN: packets inside the rules' address/port
boxes (so they meet the rules) and random ones. Reports compile and load seconds,
program size, lookups used, and ns/packet (median, 90th percentile, worst) as the
kernel measures them. Runs in a network namespace it creates and deletes (root);
there every address is local, so xdp/tc classify packets as INPUT traffic.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass

from bpfilter.backend import compile_table
from bpfilter.backend.lookup import find_runs
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Table
from bpfilter.passes.fivetuple import PORT_NONE
from bpfilter.verify import packets as P

PEER_MAC = "02:00:00:00:00:02"


@dataclass(frozen=True)
class BenchRow:
    flavor: str
    shape: str  # "lookup" or "linear"
    rules: int
    lookups: int  # tree lookups in the programs
    insns: int  # instructions of the largest program
    compile_s: float
    load_s: float
    ns_median: int
    ns_p90: int
    ns_max: int
    verdicts: dict[str, int]


def sample_points(table: Table, n: int, seed: int = 1) -> list[tuple[int, int, int, int, int]]:
    """(src, dst, proto, sport, dport): half inside rule boxes, half random."""
    rng = random.Random(seed)
    boxes = [b for chain in table.chains for _, _, bs in find_runs(chain.rules, 1) for b in bs
             if b.lo[5] == 1 or b.hi[5] == 1]
    out = []
    for i in range(n):
        if boxes and i % 2 == 0:
            b = rng.choice(boxes)
            v = [rng.randint(lo, hi) for lo, hi in zip(b.lo[:5], b.hi[:5], strict=True)]
            if v[2] == 0 or v[2] == 255:
                v[2] = rng.choice((6, 17))
            v[3] = v[3] if v[3] < PORT_NONE else rng.randrange(65536)
            v[4] = v[4] if v[4] < PORT_NONE else rng.randrange(65536)
            out.append((v[0], v[1], v[2], v[3], v[4]))
        else:
            out.append((rng.getrandbits(32), rng.getrandbits(32), rng.choice((6, 17, 1)),
                        rng.randrange(65536), rng.randrange(65536)))
    return out


def frame(pkt: tuple[int, int, int, int, int], mac: str) -> bytes:
    src, dst = (str(ipaddress.IPv4Address(a)) for a in pkt[:2])
    proto, sport, dport = pkt[2:]
    if proto == P.IPPROTO_TCP:
        l4 = P.tcp_segment(src, dst, sport, dport, 0x02, b"x" * 10)
    elif proto == P.IPPROTO_UDP:
        l4 = P.udp_datagram(src, dst, sport, dport, b"x" * 18)
    else:
        l4 = P.icmp_message(8, 0, payload=b"x" * 18)
    return P.ether(mac, PEER_MAC, P.ETH_P_IP, P.ipv4_header(src, dst, proto, len(l4)) + l4)


def measure(table: Table, flavors: list[str], shapes: list[str], points: list, repeat: int,
            ifindex: int, mac: str) -> list[BenchRow]:
    """Call inside the bench namespace."""
    rows = []
    n_rules = sum(len(c.rules) for c in table.chains)
    frames = [frame(p, mac) for p in points]
    for shape in shapes:
        kw: dict = {} if shape == "lookup" else {"lookups": False, "min_run": 10**9}
        for flavor in flavors:
            t0 = time.perf_counter()
            progs = compile_table(table, Family.IPV4, flavor, **kw)  # type: ignore[arg-type]
            t1 = time.perf_counter()
            hook = "INPUT" if flavor == "nf" else "ingress"
            with LoadedTable(progs) as lt:
                t2 = time.perf_counter()
                ns, verdicts = [], {}
                for fr in frames:
                    res = lt.run(hook, fr, ifindex, repeat=repeat)
                    ns.append(res.duration_ns)
                    verdicts[res.verdict] = verdicts.get(res.verdict, 0) + 1
            ns.sort()
            lookups = len({c.name for p in progs for c in p.map_contents}) // 2
            rows.append(BenchRow(flavor, shape, n_rules, lookups,
                                 max(p.program.insn_count for p in progs), round(t1 - t0, 3),
                                 round(t2 - t1, 3), int(statistics.median(ns)),
                                 ns[int(len(ns) * 0.9)], ns[-1], verdicts))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bpfilter bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="iptables-save text")
    ap.add_argument("--flavors", nargs="+", default=["xdp", "tc", "nf"],
                    choices=["xdp", "tc", "nf"])
    ap.add_argument("--packets", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20000, help="test_run repeats per packet")
    ap.add_argument("--linear", action="store_true", help="also the linear program")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    with open(args.file) as fh:
        text = fh.read()
    try:
        table = parse_restore(text, family=Family.IPV4, filename=args.file).table("filter")
    except RestoreError as e:
        print(f"bpfilter bench: {e}", file=sys.stderr)
        return 1
    if table is None:
        print("bpfilter bench: no filter table in the file", file=sys.stderr)
        return 1
    from bpfilter.verify.netns import Topology

    points = sample_points(table, args.packets)
    shapes = ["lookup"] + (["linear"] if args.linear else [])
    with Topology("bench") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.addr("fw", "v0", "192.168.7.1/24")
        topo.route("fw", "local", "0.0.0.0/0", "dev", "lo", "table", "local")
        rows = topo.call("fw", measure, table, args.flavors, shapes, points, args.repeat,
                         topo.ifindex("fw", "v0"), topo.mac("fw", "v0"))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 0
    print(f"{'flavor':6} {'shape':6} {'rules':>6} {'lookups':>7} {'insns':>6} {'compile':>8} "
          f"{'load':>6} {'ns med':>6} {'p90':>5} {'max':>5}  verdicts")
    for r in rows:
        print(f"{r.flavor:6} {r.shape:6} {r.rules:6d} {r.lookups:7d} {r.insns:6d} "
              f"{r.compile_s:7.2f}s {r.load_s:5.2f}s {r.ns_median:6d} {r.ns_p90:5d} "
              f"{r.ns_max:5d}  {r.verdicts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
