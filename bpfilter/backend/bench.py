"""Micro-benchmark: ns/packet of compiled tables through BPF_PROG_TEST_RUN.

Usage (root): ``python -m bpfilter.backend.bench [--rules 10 1000] [--style mixed]``.
Runs in a network namespace it creates and deletes (xdp/tc need an interface for
bpf_fib_lookup). The ruleset is N rules the packet does not match (the whole chain is
walked), then the policy. ``--style``: "mixed" `-s A/32 -p tcp --dport P -j DROP` (stays
linear), "blocklist" `-s A/32 -j DROP` and "ports" `-p tcp --dport P -j DROP` (both become
a binary search, see runs.py).
"""

from __future__ import annotations

import argparse

from bpfilter.backend.compile import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.verify import packets as P

LOCAL, SRC, PEER_MAC = "192.168.7.1", "172.16.5.9", "02:00:00:00:00:02"


STYLES = {
    # each rule differs in two fields: stays a linear walk
    "mixed": lambda i: f"-s {_addr(i)}/32 -p tcp --dport {1 + i % 60000} -j DROP",
    # blocklist: one exact source per rule → binary search (runs.py)
    "blocklist": lambda i: f"-s {_addr(i)}/32 -j DROP",
    # port allowlist → binary search over --dport
    "ports": lambda i: f"-p tcp --dport {1 + i % 60000} -j DROP",
}


def _addr(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def ruleset(n: int, style: str = "mixed") -> str:
    rules = "".join(f"-A INPUT {STYLES[style](i)}\n" for i in range(n))
    head = ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    return f"*filter\n{head}{rules}COMMIT\n"


def measure(sizes: list[int], flavors: list[str], repeat: int, mac: str, style: str = "mixed",
            linear: bool = False) -> list[tuple[str, int, int, int]]:
    """(flavor, rules, instructions, ns/packet) — call inside the bench namespace."""
    import socket

    ifindex = socket.if_nametoindex("v0")
    seg = P.tcp_segment(SRC, LOCAL, 1024, 65000, 0x02, b"x" * 10)
    frame = P.ether(mac, PEER_MAC, P.ETH_P_IP, P.ipv4_header(SRC, LOCAL, 6, len(seg)) + seg)
    out = []
    for n in sizes:
        table = parse_restore(ruleset(n, style), family=Family.IPV4).table("filter")
        assert table is not None
        for flavor in flavors:
            extra = {"min_run": 10**9, "lookups": False} if linear else {}
            progs = compile_table(table, Family.IPV4, flavor, **extra)  # type: ignore[arg-type]
            with LoadedTable(progs) as lt:
                hook = "INPUT" if flavor == "nf" else "ingress"
                res = lt.run(hook, frame, ifindex, repeat=repeat)
                assert res.verdict == "ACCEPT", res
                insns = next(p for p in progs if p.hook == hook).program.insn_count
                out.append((flavor, n, insns, res.duration_ns))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rules", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--flavors", nargs="+", default=["xdp", "tc", "nf"])
    ap.add_argument("--repeat", type=int, default=100000)
    ap.add_argument("--style", choices=sorted(STYLES), default="mixed")
    ap.add_argument("--linear", action="store_true",
                    help="no search trees / map lookups: one compare chain per rule")
    args = ap.parse_args()
    from bpfilter.verify.netns import Topology

    with Topology("bench") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.addr("fw", "v0", f"{LOCAL}/24")
        mac = topo.mac("fw", "v0")
        rows = topo.call("fw", measure, args.rules, args.flavors, args.repeat, mac, args.style,
                         args.linear)
    print(f"{'flavor':6} {'rules':>6} {'insns':>7} {'ns/pkt':>7}")
    for flavor, n, insns, ns in rows:
        print(f"{flavor:6} {n:6d} {insns:7d} {ns:7d}")


if __name__ == "__main__":
    main()
