"""IPv6 scale benchmark: BPF_PROG_TEST_RUN ns/packet with N ip6tables rules, per flavor.

`python -m bench.bench_ipv6 [--rules 0 10 100 1000] [--repeat 100000]`

N rules `-s fd30::<i>/128 -p tcp --dport <p> -j DROP`, none of which match the probe,
then the policy (the linear worst case: IPv6 has no lookups yet, see the backend
README), measured with a plain TCP probe and with one behind a hop-by-hop and a
destination options header (the extension header walk). Runs inside a namespace it
creates and deletes; xdp/tc classify the probe as INPUT through a local route.
"""

from __future__ import annotations

import argparse
import time

from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.verify import packets as P

PEER_MAC = "02:00:00:00:00:02"


def ruleset(n: int) -> str:
    lines = [f"-A INPUT -s fd30::{i + 1:x}/128 -p tcp --dport {1000 + i % 50000} -j DROP"
             for i in range(n)]
    return ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            + "".join(line + "\n" for line in lines) + "COMMIT\n")


def probe(mac: str, ext: bool) -> bytes:
    src, dst = "fd20::1", "fd10::1"
    l4 = P.tcp_segment(src, dst, 1234, 80, 0x02, b"x" * 10)
    if ext:  # hop-by-hop then destination options (PadN each), then TCP
        body = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 1, 4, 0, 0, 0, 0]) + l4
        dg = P.ipv6_header(src, dst, 0, len(body)) + body
    else:
        dg = P.ipv6_header(src, dst, 6, len(l4)) + l4
    return P.ether(mac, PEER_MAC, P.ETH_P_IPV6, dg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, nargs="+", default=[0, 10, 100, 1000])
    ap.add_argument("--repeat", type=int, default=100_000)
    args = ap.parse_args()
    from bpfilter.verify.netns import Topology, call_in_netns

    with Topology("b6") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.addr("fw", "v0", "fd00::1/64")
        topo.route("fw", "local", "fd10::/16", "dev", "lo")
        ns, ifindex, mac = topo.ns("fw"), topo.ifindex("fw", "v0"), topo.mac("fw", "v0")
        for n in args.rules:
            table = parse_restore(ruleset(n), family=Family.IPV6).table("filter")
            assert table is not None
            for flavor in ("xdp", "tc", "nf"):
                t0 = time.monotonic()
                progs = compile_table(table, Family.IPV6, flavor)  # type: ignore[arg-type]
                secs = time.monotonic() - t0
                insns = max(len(p.program.insns) // 8 for p in progs)

                def body(progs=progs, flavor=flavor) -> list[tuple[str, int]]:
                    out = []
                    with LoadedTable(progs) as lt:
                        for ext in (False, True):
                            # ext headers: xdp/tc hand the packet to the INPUT companion
                            hook = "INPUT" if flavor == "nf" or ext else "ingress"
                            r = lt.run(hook, probe(mac, ext), ifindex, repeat=args.repeat)
                            out.append((r.verdict, r.duration_ns))
                    return out

                (v0, ns0), (v1, ns1) = call_in_netns(ns, body)
                print(f"ipv6 {n:6d} rules {flavor:3s}  plain {ns0:5d} ns ({v0})  "
                      f"hbh+dst {ns1:5d} ns ({v1})  insns {insns:6d}  compile {secs:5.2f}s",
                      flush=True)


if __name__ == "__main__":
    main()
