"""Record what iptables-legacy 1.8.9 does with group-A edge cases (needs root).

``python -m tests.unit.ext_a_oracle`` runs every rule of ``CASES`` through the
real iptables-legacy-restore / -save inside a private network namespace (created
and deleted here) and rewrites ``data/ext_a_ref189.tsv`` with one line per case:
``family<TAB>table<TAB>chain<TAB>rule<TAB>printed rule or FAIL``. The unit test
``test_ext_a_ref189`` replays the file without root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "ext_a_ref189.tsv"
NS = "bpf_ext_a_oracle"
SETUP = ("ipset create foo hash:ip", "ipset create bar hash:ip,port",
         "ipset create m hash:ip skbinfo", "ipset create foo6 hash:ip family inet6")

# (family, table, chain, rule arguments)
CASES: list[tuple[str, str, str, str]] = [
    (f, "filter", "INPUT", r) for f in ("4", "6") for r in (
        "-m conntrack --ctstate n,est,inv",
        "-m conntrack --ctstatus assured,expected",
        "-m conntrack --ctstatus NONE,ASSURED",
        "-m conntrack --ctorigsrcport 4:0",
        "-m conntrack --ctproto tcp ! --ctorigdstport 80 --ctdir reply ! --ctexpire 5:10 "
        "--ctstate NEW",
        "-m conntrack ! --ctstatus NONE --ctproto 0",
        "-m conntrack --ctstate NEW,",
        "-m conntrack --ctstate ,NEW",
        "-m conntrack --ctstate NEW --ctstate ESTABLISHED",
        "-m conntrack --ctorigsrcport ssh",
        "-m conntrack --ctproto all",
        "-m conntrack --ctexpire :",
        "-m conntrack --ctexpire 5:",
        "-m conntrack --ctdir foo",
        "-m state --state est",
        "-m state --state UNTRACKED,ESTABLISHED,RELATED,NEW,INVALID",
        "-m state --state NEW,SNAT",
        "-m limit",
        "-m limit ! --limit 3/hour",
        "-m limit --limit 1/d",
        "-m limit --limit 1/d --limit-burst 1",
        "-m limit --limit 2/h --limit-burst 0",
        "-m limit --limit 3/m",
        "-m limit --limit 5",
        "-m limit --limit 3/hourx",
        "-m limit --limit 10000/s",
        "-m limit --limit 10001/s",
        "-m limit --limit 333/min",
        "-m limit --limit 7/s --limit-burst 10000",
        "-m limit --limit-burst 10001",
        "-m hashlimit --hashlimit-upto 1/min --hashlimit-name a --hashlimit-rate-match",
        "-m hashlimit ! --hashlimit-above 5/sec --hashlimit-name a",
        "-m hashlimit --hashlimit 5 --hashlimit-name a --hashlimit-srcmask 24 "
        "--hashlimit-mode srcport,dstip,srcip",
        "-m hashlimit --hashlimit-upto 5/sec --hashlimit-name a --hashlimit-mode none",
        "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-name a",
        "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-name a --hashlimit-burst 5",
        "-m hashlimit --hashlimit-upto 100b/s --hashlimit-name a --hashlimit-burst 1000",
        "-m hashlimit --hashlimit-upto 3mb/s --hashlimit-name a --hashlimit-burst 10mb",
        "-m hashlimit --hashlimit-upto 3/hour --hashlimit-name a --hashlimit-htable-expire 3600000",
        "-m hashlimit --hashlimit-upto 7/sec --hashlimit-name a --hashlimit-burst 2k",
        "-m hashlimit --hashlimit-upto 7/sec --hashlimit-name a --hashlimit-burst 1m",
        "-m hashlimit --hashlimit-upto 7/sec --hashlimit-name a --hashlimit-burst 1000001",
        "-m hashlimit --hashlimit-upto 7/sec --hashlimit-name a --hashlimit-rate-interval 5",
        "-m hashlimit --hashlimit-upto 7/sec --hashlimit-name a --hashlimit-htable-gcinterval 0",
        "-m hashlimit --hashlimit-upto 7/sec --hashlimit-name a --hashlimit-htable-size 100 "
        "--hashlimit-dstmask 0",
        "-m hashlimit --hashlimit-upto 3000000/sec --hashlimit-name a",
        "-m hashlimit --hashlimit-above 1/day --hashlimit-name a",
        "-m hashlimit --hashlimit-above 1/hour --hashlimit-burst 30 --hashlimit-name a",
        "-m hashlimit --hashlimit-above 1/hour --hashlimit-burst 40 --hashlimit-name a",
        "-m hashlimit --hashlimit-above 1/day --hashlimit-burst 1000 --hashlimit-name a "
        "--hashlimit-rate-match",
        "-m hashlimit --hashlimit-upto 333/min --hashlimit-name a --hashlimit-mode dstport",
        "-m hashlimit --hashlimit-above 1/day --hashlimit-name a --hashlimit-burst 1 "
        "--hashlimit-rate-match --hashlimit-rate-interval 3",
        "-m mark --mark 07",
        "-m mark --mark 0x5/0xffffffff",
        "-m mark ! --mark 1/2",
        "-m mark --mark 1/",
        "-m connmark --mark 0xffffffff/0x0",
        "-j MARK --set-mark 1 --or-mark 2",
        "-j MARK --and-mark 0xf0",
        "-j MARK --set-mark 5/0xf",
        "-j MARK --xor-mark 5",
        "-j CONNMARK --set-xmark 1 --mask 3",
        "-j CONNMARK --mask 3 --set-xmark 1",
        "-j CONNMARK --save-mark --nfmask 1 --mask 2",
        "-j CONNMARK --save-mark --mask 0xff",
        "-j CONNMARK --restore-mark --right-shift-mark 3 --nfmask 1",
        "-j CONNMARK --restore-mark --right-shift-mark 33",
        "-j CONNMARK --or-mark 3 --ctmask 7",
        "-j CONNMARK --ctmask 7 --or-mark 3",
        "-j CONNMARK --nfmask 1",
        "-m addrtype --src-type LOCAL,unicast ! --dst-type BROAD",
        "-m addrtype --src-type LOCAL --limit-iface-out",
        "-m addrtype --src-type LOC,",
        "-m addrtype --dst-type BLACKHOLE",
        "-m recent --rcheck --hitcount 65535",
        "-m recent --rcheck --hitcount 65536",
        "-m recent ! --update --seconds 60 --reap --name x --rdest",
        "-m recent --set --seconds 5",
        "-m recent --rttl --set",
        "-m recent --rcheck --name a/b",
        "-m recent --rdest --set --rsource",
        "-m recent --rcheck --reap",
        "-m recent --rcheck ! --rttl",
        "-m statistic --mode nth --every 5",
        "-m statistic --mode nth --every 3 --packet 2",
        "-m statistic --mode nth ! --every 1 --packet 0",
        "-m statistic --mode random --probability 0.3",
        "-m statistic --mode random --probability 1e-3",
        "-m statistic --mode random --probability 0x0.8",
        "-m statistic --mode random --probability .5x",
        "-m statistic --mode random ! --probability 0.5 --every 3",
        "-m statistic --mode foo",
        "-m connlimit --connlimit-above 3 --connlimit-mask 24",
        "-m connlimit ! --connlimit-upto 3",
        "-m connlimit ! --connlimit-above 3 --connlimit-daddr",
        "-m connlimit --connlimit-above 3 --connlimit-mask 129",
        "-m connlimit --connlimit-above 3 --connlimit-mask 256",
        "-m connlimit --connlimit-daddr --connlimit-saddr --connlimit-above 3",
        "-m length --length 0x10:020",
        "-m length ! --length :5",
        "-m mac --mac-source aa:BB:cc:0:1:2",
        "-m mac --mac-source aa::cc:0:1:2",
        "-m mac --mac-source aa:bb:cc:00:01:002",
        "-m pkttype --pkt-type host",
        "-m pkttype ! --pkt-type mcast",
        "-m pkttype --pkt-type otherhost",
        "-m pkttype --pkt-type outgoing",
        "-j LOG --log-level warn",
        "-j LOG --log-level error",
        "-j LOG --log-level 0x3",
        "-j LOG --log-prefix \"it's\"",
        "-j LOG --log-prefix 123456789012345678901234567890",
        "-j LOG --log-macdecode --log-uid --log-level 4",
        "-j NFLOG --nflog-prefix \"a b\" --nflog-group 3 --nflog-size 5",
        "-j NFLOG --nflog-group 3 --nflog-range 5 --nflog-threshold 9",
        "-j NFLOG --nflog-size 0",
        "-j NFLOG --nflog-threshold 0",
        "-j NFQUEUE --queue-cpu-fanout",
        "-j NFQUEUE --queue-num 3 --queue-balance 1:2",
        "-j NFQUEUE --queue-balance 65534:65535",
        "-j NFQUEUE --queue-balance 1:65535",
        "-j REJECT --reject-with i",
        "-j REJECT --reject-with port-unreach",
        "-j REJECT --reject-with tcp-rst",
        "-p tcp -j REJECT --reject-with tcp-rst",
        "! -p tcp -j REJECT --reject-with tcp-reset",
        "-p tcp -m tcpmss --mss 1000:999",
        "-p tcp -m tcpmss ! --mss 5:",
        "-p tcp --tcp-flags SYN,ACK SYN -j TCPMSS --set-mss 5",
        "-p tcp --tcp-flags ACK ACK -j TCPMSS --set-mss 5",
        "-p tcp ! --syn -j TCPMSS --set-mss 5",
        "-p tcp --syn -j TCPMSS --clamp-mss-to-pmtu --set-mss 5",
        "-p tcp --syn -j TCPMSS --set-mss 5 --clamp-mss-to-pmtu",
    )
] + [
    # The sets are IPv4 sets: ip6tables refuses them (kernel state, not syntax).
    ("4", "filter", "INPUT", r) for r in (
        "-m set --match-set foo src",
        "-m set ! --match-set bar src,dst --return-nomatch ! --update-counters "
        "--update-subcounters ! --packets-eq 5 --bytes-gt 7",
        "-m set --set foo dst",
        "-m set --match-set foo srcx",
        "-m set --match-set foo src,dst,src,dst,src,dst,src",
        "-m set --match-set foo src --packets-lt 3 --packets-gt 4",
        "-m set --match-set foo src ! --packets-lt 3",
        "-j SET --add-set foo src --exist --timeout 5 --del-set bar dst,src",
        "-j SET --del-set foo src --exist",
        "-j SET --map-set m src --map-mark",
        "-j SET --add-set foo src --timeout 4294967295",
        "-m conntrack --ctorigsrc 1.2.3.4/24",
        "-m conntrack --ctorigsrc 1.2.3.4/255.0.255.0",
        "-m conntrack --ctreplsrc 10.0.0.0/8 ! --ctrepldst 1.2.3.4/0",
        "-m recent --rcheck --mask 255.0.255.0",
        "-m recent --rcheck --mask 1.2",
        "-m connlimit --connlimit-above 3 --connlimit-mask 255.0.255.0",
        "-m iprange --src-range 1.1.1.1",
        "-m iprange --src-range 1.1.1.10-1.1.1.1 --dst-range 2.2.2.2-2.2.2.3",
        "-m iprange --src-range 1.1-1.2",
        "-m iprange --src-range 1.1.1.1-",
        "-m ttl ! --ttl 5",
        "-m ttl --ttl-gt 255 --ttl-lt 3",
        "-m ttl ! --ttl-lt 5",
        "-j REJECT --reject-with icmp-p",
        "-j REJECT --reject-with echo-reply",
    )
] + [
    ("6", "filter", "INPUT", r) for r in (
        "-m conntrack --ctorigsrc ::ffff:1.2.3.4/120",
        "-m recent --rcheck --mask ffff::",
        "-m iprange --src-range ::1-::ffff:1.2.3.4",
        "-m addrtype --src-type BROADCAST",
        "-m addrtype --src-type THROW",
        "-m hl ! --hl-eq 4 ",
        "-j REJECT --reject-with icmp6-addr",
        "-j REJECT --reject-with icmp-port-unreachable",
        "-j REJECT --reject-with p",
    )
] + [
    ("4", "filter", "OUTPUT", "-m mac --mac-source aa:bb:cc:00:01:02"),
    ("4", "filter", "OUTPUT", "-m addrtype --src-type LOCAL --limit-iface-in"),
    ("4", "filter", "INPUT", "-m addrtype --src-type LOCAL --limit-iface-out"),
    ("4", "mangle", "PREROUTING", "-p tcp --syn -j TCPMSS --clamp-mss-to-pmtu"),
    ("4", "mangle", "PREROUTING", "-p tcp --syn -j TCPMSS --set-mss 5"),
    ("4", "mangle", "PREROUTING", "-j REJECT"),
    ("4", "mangle", "FORWARD", "-p tcp --syn -j TCPMSS --set-mss 65515"),
    ("4", "mangle", "FORWARD", "-p tcp --syn -j TCPMSS --set-mss 65516"),
    ("6", "mangle", "FORWARD", "-p tcp --syn -j TCPMSS --set-mss 65495"),
    ("6", "mangle", "FORWARD", "-p tcp --syn -j TCPMSS --set-mss 65496"),
    ("4", "mangle", "PREROUTING", "-j TTL --ttl-set 5"),
    ("4", "filter", "INPUT", "-j TTL --ttl-set 5"),
    ("6", "mangle", "POSTROUTING", "-j HL --hl-inc 255"),
    ("4", "mangle", "PREROUTING", "-j SET --map-set m src --map-mark --map-prio"),
    ("4", "mangle", "POSTROUTING", "-j SET --map-set m src --map-mark --map-prio"),
]


def _ns(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", NS, *argv], input=stdin,
                          capture_output=True, text=True, check=False)


def record() -> list[str]:
    """Run every case through iptables-legacy 1.8.9; the TSV lines."""
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for cmd in SETUP:
            _ns(*cmd.split())
        out = []
        for fam, table, chain, rule in CASES:
            tool = "ip6tables-legacy" if fam == "6" else "iptables-legacy"
            text = f"*{table}\n-A {chain} {rule}\nCOMMIT\n"
            res = _ns(f"{tool}-restore", stdin=text)
            printed = "FAIL"
            if res.returncode == 0:
                save = _ns(f"{tool}-save", "-t", table).stdout
                printed = next(line for line in save.splitlines() if line.startswith("-A "))
                _ns(tool, "-t", table, "-F")
            out.append("\t".join((fam, table, chain, rule, printed)))
        return out
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


if __name__ == "__main__":
    lines = record()
    DATA.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} cases to {DATA}", file=sys.stderr)
