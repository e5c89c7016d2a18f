"""Throughput over a veth pair: bpfilter (xdp, tc, nf) against iptables-legacy,
iptables-nft and nftables, side by side in one run; prints JSON, writes a PNG.

    python -m bench.veth_pps [--sizes 0 1000 10000] [--kinds classbench blocklist]
        [--seconds 3] [--rounds 3] [--fw none legacy nft nftables bpf-xdp bpf-tc bpf-nf]
        [--verdict accept|drop] [--json FILE] [--png FILE]

Setup (namespaces created here, deleted at the end): netns "gen" runs trafgen (one
process pinned to one CPU) sending 64-byte UDP frames over veth g0 → v0 in netns "fw",
whose filter/INPUT holds the ruleset. The probe packet's first match is nothing (the
worst case: every rule of a linear walk runs) and the policy accepts it, so the packet
is delivered locally; pps = IpInDelivers in "fw" per second while trafgen runs
(packets the firewall let through: what a server behind it would get).
`--verdict drop` measures the firewall itself instead of the local UDP stack: INPUT's
policy is DROP, so the probe walks every rule and is dropped by the policy (nftables:
by a final `counter name decided drop` rule); pps = the firewall's own count of those
drops (bpfilter-save -c / iptables-*-save -c policy counter of INPUT, the nft named
counter) over a window read while trafgen runs, next to the sender's rate in the same
window (g0 tx_packets): a firewall that cannot keep up decides fewer packets than sent.
Firewalls: "legacy" iptables-legacy-restore; "nft" iptables-nft-restore (nf_tables
rules, one per iptables rule); "nftables" native nft: blocklists as one set
(`ip saddr @block drop`), ClassBench-like ACLs as rules (iptables-restore-translate:
mixed verdicts and overlapping ranges cannot be one set); "bpf-*": bpfilter-restore
--hook xdp|tc|nf. Also times loading each ruleset (wall clock of the restore command).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.rulesets import (
    HEAD,
    TAIL,
    Rule5,
    blocklist,
    classbench,
    first_match,
    restore_text,
)
from bpfilter.verify import packets as P

GENERATORS = {"classbench": classbench, "blocklist": blocklist}
FW_ADDR, GEN_ADDR = "10.200.0.1", "10.200.0.2"
EXTRA_ADDRS = ("192.0.2.1", "198.51.100.1", "203.0.113.1", "100.64.0.1")
FIREWALLS = ("none", "legacy", "nft", "nftables", "bpf-xdp", "bpf-tc", "bpf-nf")
BIN = Path(sys.executable).parent


def sh(ns: str | None, *argv: str, stdin: str | None = None, env: dict | None = None,
       check: bool = True) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()[-2000:]}")
    return proc


def probe(rules: list[Rule5]) -> tuple[int, int, int, int, int]:
    """A UDP packet that no rule matches, to an address the firewall will own."""
    for dst_text in (FW_ADDR, *EXTRA_ADDRS):
        dst = int(ipaddress.IPv4Address(dst_text))
        for i in range(2000):
            src = ((1 + i % 223) << 24) | (i * 2654435761 & 0xFFFFFF)
            pkt = (src, dst, 17, 40000 + i % 20000, 9 + i * 7919 % 50000)
            if first_match(rules, pkt) is None:
                return pkt
    raise RuntimeError("no probe packet matches no rule")


def trafgen_conf(pkt: tuple[int, int, int, int, int], dst_mac: str, src_mac: str) -> str:
    src, dst = (str(ipaddress.IPv4Address(a)) for a in pkt[:2])
    udp = P.udp_datagram(src, dst, pkt[3], pkt[4], bytes(18))
    frame = P.ether(dst_mac, src_mac, P.ETH_P_IP, P.ipv4_header(src, dst, 17, len(udp)) + udp)
    assert len(frame) == 60  # 64 on the wire with the FCS
    return "{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n"


def in_delivers(ns: str) -> int:
    text = sh(ns, "cat", "/proc/net/snmp").stdout
    head, vals = [ln.split() for ln in text.splitlines() if ln.startswith("Ip:")][:2]
    return int(vals[head.index("InDelivers")])


def with_policy(text: str, policy: str) -> str:
    return text.replace(":INPUT ACCEPT", f":INPUT {policy.upper()}", 1)


NFT_TAIL = "add counter ip filter decided\nadd rule ip filter INPUT counter name decided drop\n"


def nft_text(rules: list[Rule5], kind: str, tmp: Path, policy: str = "accept") -> str:
    """Native nft; with policy "drop" the chain ends in `counter name decided drop`."""
    if kind == "blocklist":
        drops = [r for r in rules if r.verdict == "DROP" and r.src[1] == 32 and not r.proto]
        rest = [r for r in rules if r not in drops]
        elems = ", ".join(str(ipaddress.IPv4Address(r.src[0])) for r in drops)
        lines = ["table ip bench {",
                 "  set block { type ipv4_addr; " + (f"elements = {{ {elems} }}" if elems
                                                    else "") + " }",
                 "  counter decided { }",
                 "  chain input { type filter hook input priority 0; "
                 f"policy {policy};",
                 "    ip saddr @block drop"]
        for r in rest:
            lines.append(f"    ip daddr {ipaddress.IPv4Address(r.dst[0])}/{r.dst[1]} tcp dport "
                         f"{r.dport[0]} accept" if r.dport else "")
        if policy == "drop":
            lines.append("    counter name decided drop")
        return "\n".join(lines + ["  }", "}"]) + "\n"
    src = tmp / "rules.v4"
    src.write_text(with_policy(restore_text(rules), policy))
    out = sh(None, "iptables-restore-translate", "-f", str(src)).stdout
    return "flush ruleset\n" + out + (NFT_TAIL if policy == "drop" else "")


def policy_packets(save_text: str, chain: str = "INPUT") -> int:
    """Packets counted by a built-in chain's policy in iptables-save -c text."""
    m = re.search(rf"^:{chain} \S+ \[(\d+):\d+\]", save_text, re.M)
    if m is None:
        raise RuntimeError(f"no policy counter for {chain} in:\n{save_text[:500]}")
    return int(m.group(1))


def nft_counter_packets(text: str) -> int:
    m = re.search(r"packets (\d+) bytes", text)
    if m is None:
        raise RuntimeError(f"no nft counter in:\n{text[:500]}")
    return int(m.group(1))


class Lab:
    def __init__(self, tmp: Path) -> None:
        from bpfilter.verify.netns import Topology

        self.tmp = tmp
        self.topo = Topology("pps")
        self.topo.__enter__()
        self.topo.veth("gen", "g0", "fw", "v0")
        self.topo.addr("gen", "g0", f"{GEN_ADDR}/16")
        self.topo.addr("fw", "v0", f"{FW_ADDR}/16")
        self.gen, self.fw = self.topo.ns("gen"), self.topo.ns("fw")
        self.topo.route("fw", "default", "via", GEN_ADDR)
        self.fw_mac, self.gen_mac = self.topo.mac("fw", "v0"), self.topo.mac("gen", "g0")
        self.topo.neigh("fw", GEN_ADDR, self.gen_mac, "v0")
        self.env = {**os.environ, "BPFILTER_RUN_DIR": str(tmp / "run")}
        self.nft_table = "filter"

    def close(self) -> None:
        self.clear()
        subprocess.run(["umount", "-l", str(self.tmp / "run" / "bpffs")], capture_output=True)
        self.topo.__exit__(None, None, None)

    def clear(self) -> None:
        sh(self.fw, str(BIN / "bpfilter"), "flush", env=self.env, check=False)
        empty = HEAD + TAIL
        sh(self.fw, "iptables-legacy-restore", stdin=empty, check=False)
        sh(self.fw, "iptables-nft-restore", stdin=empty, check=False)
        sh(self.fw, "nft", "flush", "ruleset", check=False)

    def install(self, fw: str, rules: list[Rule5], kind: str, policy: str = "accept") -> float:
        text = with_policy(restore_text(rules), policy)
        t0 = time.perf_counter()
        if fw == "legacy":
            sh(self.fw, "iptables-legacy-restore", stdin=text)
        elif fw == "nft":
            sh(self.fw, "iptables-nft-restore", stdin=text)
        elif fw == "nftables":
            self.nft_table = "bench" if kind == "blocklist" else "filter"
            sh(self.fw, "nft", "-f", "-", stdin=nft_text(rules, kind, self.tmp, policy))
        elif fw.startswith("bpf-"):
            sh(self.fw, str(BIN / "bpfilter-restore"), f"--hook={fw[4:]}", stdin=text,
               env=self.env)
        return time.perf_counter() - t0

    def send(self, conf: str, seconds: float) -> float:
        cfg = self.tmp / "pkt.cfg"
        cfg.write_text(conf)
        before = in_delivers(self.fw)
        t0 = time.perf_counter()
        sh(self.gen, "timeout", "-s", "INT", str(seconds), "taskset", "-c", "1", "trafgen",
           "--dev", "g0", "--conf", str(cfg), "--cpus", "1", check=False)
        dt = time.perf_counter() - t0
        return (in_delivers(self.fw) - before) / dt

    def decided(self, fw: str) -> int:
        """Packets the firewall has dropped at the end of INPUT, from its own counters."""
        pin = ("taskset", "-c", "0")  # off trafgen's CPU
        if fw == "nftables":
            return nft_counter_packets(sh(self.fw, *pin, "nft", "list", "counter", "ip",
                                          self.nft_table, "decided").stdout)
        cmd = {"legacy": ("iptables-legacy-save",), "nft": ("iptables-nft-save",)}.get(
            fw, (str(BIN / "bpfilter-save"),))
        return policy_packets(sh(self.fw, *pin, *cmd, "-c", "-t", "filter",
                                 env=self.env).stdout)

    def sent(self) -> int:
        return int(sh(self.gen, "cat", "/sys/class/net/g0/statistics/tx_packets").stdout)

    def send_drop(self, conf: str, fw: str, seconds: float, warmup: float = 1.0
                  ) -> tuple[float, float]:
        """(decided pps, sent pps) over a window inside a running trafgen."""
        cfg = self.tmp / "pkt.cfg"
        cfg.write_text(conf)
        gen = subprocess.Popen(["ip", "netns", "exec", self.gen, "taskset", "-c", "1",
                                "trafgen", "--dev", "g0", "--conf", str(cfg), "--cpus", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # trafgen forks: signal the group
        try:
            time.sleep(warmup)
            # Same command at both ends: its latency cancels out of the window.
            s0, t0 = self.sent(), time.perf_counter()
            d0 = self.decided(fw)
            time.sleep(seconds)
            s1, t1 = self.sent(), time.perf_counter()
            d1 = self.decided(fw)
        finally:
            os.killpg(gen.pid, signal.SIGINT)
            try:
                gen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(gen.pid, signal.SIGKILL)
                gen.wait()
        if s1 == s0:
            raise RuntimeError(f"trafgen sent nothing (exit {gen.returncode})")
        return (d1 - d0) / (t1 - t0), (s1 - s0) / (t1 - t0)


def measure(sizes: list[int], kinds: list[str], firewalls: list[str], seconds: float,
            rounds: int = 1, verdict: str = "accept") -> list[dict]:
    if not shutil.which("trafgen"):
        raise SystemExit("trafgen (netsniff-ng) is not installed")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bpfilter-pps-") as d:
        lab = Lab(Path(d))
        try:
            for kind in kinds:
                for n in sizes:
                    rules = GENERATORS[kind](n) if n else []
                    pkt = probe(rules)
                    dst = str(ipaddress.IPv4Address(pkt[1]))
                    if dst != FW_ADDR:
                        lab.topo.addr("fw", "v0", f"{dst}/32")
                    conf = trafgen_conf(pkt, lab.fw_mac, lab.gen_mac)
                    for fw in firewalls:
                        if fw == "none" and (n or verdict == "drop"):
                            continue  # drop mode: nothing decides without a firewall
                        lab.clear()
                        load_s = lab.install(fw, rules, kind, verdict) if fw != "none" else 0.0
                        row = {"kind": kind, "rules": n, "firewall": fw, "verdict": verdict}
                        if verdict == "drop":
                            pairs = sorted(lab.send_drop(conf, fw, seconds)
                                           for _ in range(rounds))
                            runs = [p[0] for p in pairs]
                            mid = pairs[len(pairs) // 2]
                            row["sent_pps"] = round(mid[1])
                            row["sent_runs"] = [round(p[1]) for p in pairs]
                        else:
                            runs = sorted(lab.send(conf, seconds) for _ in range(rounds))
                        row |= {"pps": round(runs[len(runs) // 2]),
                                "pps_runs": [round(x) for x in runs], "load_s": round(load_s, 3)}
                        print(json.dumps(row), file=sys.stderr, flush=True)
                        rows.append(row)
                    if dst != FW_ADDR:
                        sh(lab.fw, "ip", "addr", "del", f"{dst}/32", "dev", "v0")
        finally:
            lab.close()
    return rows


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["kind"] for r in rows})
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        none = [r["pps"] for r in rows if r["firewall"] == "none" and r["kind"] == kind]
        for fw in sorted({r["firewall"] for r in rows} - {"none"}):
            pts = sorted((max(r["rules"], 1), r["pps"]) for r in rows
                         if r["kind"] == kind and r["firewall"] == fw)
            ax.plot([p[0] for p in pts], [p[1] / 1e6 for p in pts], marker="o", label=fw)
        if none:
            ax.axhline(none[0] / 1e6, color="grey", linestyle="--", label="no firewall")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rules (0 drawn at 1)")
        drop = any(r.get("verdict") == "drop" for r in rows)
        ax.set_ylabel(("Mpps decided (INPUT DROP, " if drop else "Mpps delivered (")
                      + "64-byte UDP, veth, log)")
        ax.set_title(f"{kind}: packet matching no rule")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 1000, 10000])
    ap.add_argument("--kinds", nargs="+", default=["classbench"], choices=list(GENERATORS))
    ap.add_argument("--fw", nargs="+", default=list(FIREWALLS), choices=FIREWALLS)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3, help="runs per point (median kept)")
    ap.add_argument("--verdict", choices=("accept", "drop"), default="accept",
                    help="accept: pps delivered locally (IpInDelivers); drop: INPUT policy "
                         "DROP, pps decided by the firewall (its own policy counter)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--png", help="plot pps against rule count here (needs matplotlib)")
    ap.add_argument("--plot-only", metavar="JSON", help="only redraw --png from saved rows")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.plot_only).read_text()), args.png)
        return
    rows = measure(args.sizes, args.kinds, args.fw, args.seconds, args.rounds, args.verdict)
    print(json.dumps(rows, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.png:
        plot(rows, args.png)


if __name__ == "__main__":
    main()

