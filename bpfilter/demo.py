"""`make demo`: one ruleset, two routers, the same packets — bpfilter next to iptables.

Builds two identical throwaway labs (sender → router → sink, in network
namespaces this demo creates and deletes), loads an example ruleset into one
router with `bpfilter-restore` and into the other with real
`iptables-legacy-restore`, sends the same packets to both, and prints where
each packet went on each side, then what `bpfilter-save -c` reports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bpfilter.verify.differential import BpfilterCli, IptablesLegacy, Twin
from bpfilter.verify.netns import Topology
from bpfilter.verify.packets import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP_FLAGS, PacketSpec

RULES = Path(__file__).resolve().parents[1] / "rules" / "web-server.v4"
SYN, ACK = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]

# (what it is, packet). Destinations in 10/8 are the router itself (INPUT);
# others are routed through it (FORWARD).
PACKETS = [
    ("ping the server", PacketSpec("150.0.0.1", "10.0.0.1", IPPROTO_ICMP, icmp_type=8)),
    ("web: SYN to port 80", PacketSpec("150.0.0.1", "10.0.0.1", IPPROTO_TCP, dport=80,
                                       tcp_flags=SYN)),
    ("web: SYN to port 443", PacketSpec("150.0.0.2", "10.0.0.1", IPPROTO_TCP, dport=443,
                                        tcp_flags=SYN)),
    ("telnet: SYN to port 23", PacketSpec("150.0.0.1", "10.0.0.1", IPPROTO_TCP, dport=23,
                                          tcp_flags=SYN)),
    ("ssh from outside 10/8", PacketSpec("150.0.0.1", "10.0.0.1", IPPROTO_TCP, dport=22,
                                         tcp_flags=SYN)),
    ("app port 8080", PacketSpec("150.0.0.3", "10.0.0.1", IPPROTO_TCP, dport=8080,
                                 tcp_flags=SYN)),
    ("established ACK to 23", PacketSpec("150.0.0.1", "10.0.0.1", IPPROTO_TCP, dport=23,
                                         tcp_flags=ACK)),
    ("blocklisted 203.0.113.9", PacketSpec("203.0.113.9", "10.0.0.1", IPPROTO_TCP, dport=80,
                                           tcp_flags=SYN)),
    ("blocklisted net, port 25", PacketSpec("192.0.2.200", "10.0.0.1", IPPROTO_TCP, dport=25,
                                            tcp_flags=SYN)),
    ("same net, port 80", PacketSpec("192.0.2.200", "10.0.0.1", IPPROTO_TCP, dport=80,
                                     tcp_flags=SYN)),
    ("DNS answer", PacketSpec("150.0.0.9", "10.0.0.1", IPPROTO_UDP, sport=53, dport=40000)),
    ("traceroute probe", PacketSpec("150.0.0.9", "10.0.0.1", IPPROTO_UDP, dport=33500)),
    ("routed through (FORWARD)", PacketSpec("150.0.0.1", "20.0.0.1", IPPROTO_UDP, dport=53)),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bpfilter-demo", description=__doc__)
    ap.add_argument("--rules", type=Path, default=RULES, help="ruleset to load")
    ap.add_argument("--hook", default="nf", choices=("nf", "xdp", "tc"))
    args = ap.parse_args(argv)
    text = args.rules.read_text()
    specs = [spec.with_tags(i + 1) for i, (_, spec) in enumerate(PACKETS)]
    run_dir = Path(tempfile.mkdtemp(prefix="bpfilter-demo-"))
    bpf_backend = BpfilterCli(args.hook, run_dir, ifaces=("in0",))
    try:
        with Topology("demo-ipt") as topo_ipt, Topology("demo-bpf") as topo_bpf:
            reference = Twin.create(topo_ipt, IptablesLegacy())
            candidate = Twin.create(topo_bpf, bpf_backend)
            print(f"== loading {args.rules.name}: iptables-legacy-restore | "
                  f"bpfilter-restore --hook {args.hook}")
            reference.load(text)
            candidate.load(text)
            print(candidate.lab.topo.exec("dut", ["bpfilter", "plan", str(args.rules)],
                                          env={"BPFILTER_RUN_DIR": str(run_dir)})
                  .stdout.splitlines()[-1])
            got_ipt, got_bpf = reference.run(specs), candidate.run(specs)
            print(f"\n{'packet':28} {'iptables':10} {'bpfilter':10}")
            same = 0
            for (what, _), spec in zip(PACKETS, specs, strict=True):
                a, b = got_ipt[spec.tags[0]], got_bpf[spec.tags[0]]
                same += a == b
                mark = "" if a == b else "   <-- differs"
                print(f"{what:28} {_verdict(a):10} {_verdict(b):10}{mark}")
            print(f"\n{same}/{len(specs)} packets got the same verdict\n")
            env = {"BPFILTER_RUN_DIR": str(run_dir)}
            print("== bpfilter-save -c (counters read from the kernel's BPF maps)")
            print(candidate.lab.topo.exec("dut", ["bpfilter-save", "-c"], env=env).stdout)
            print("== bpfilter status")
            print(candidate.lab.topo.exec("dut", ["bpfilter", "status"], env=env).stdout)
            candidate.lab.topo.exec("dut", ["bpfilter", "flush"], env=env)
            return 0 if same == len(specs) else 1
    finally:
        bpf_backend.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _verdict(where: str) -> str:
    return {"input": "accepted", "forward": "forwarded", "lost": "dropped"}[where]


if __name__ == "__main__":
    sys.exit(main())
