"""Conntrack, limits, sets, marks, LOG...: the typed values the backend compiles."""

from __future__ import annotations

import ipaddress

import pytest

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.extensions.hashlimit import HashlimitRate
from bpfilter.frontend.extensions.iprange import AddrRange
from bpfilter.frontend.extensions.ipset import SetRef
from bpfilter.frontend.extensions.types import NumRange, PortRange, ValueMask
from bpfilter.frontend.netparse import HostMask
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Rule


def rule(args: str, fam: Family = Family.IPV4, table: str = "filter",
         chain: str = "INPUT") -> Rule:
    rs = parse_restore(f"*{table}\n-A {chain} {args}\nCOMMIT\n", family=fam, filename="t")
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None
    return c.rules[0]


def opts(args: str, **kw) -> dict:
    r = rule(args, **kw)
    m = r.matches[-1] if r.matches else None
    src = r.target.options if r.target and r.target.options else m.options
    return {o.name: (o.value, o.negated) for o in src}


def test_conntrack_values() -> None:
    o = opts("-m conntrack ! --ctstate est,n --ctproto tcp --ctorigsrc 10.1.2.3/8 "
             "--ctorigdstport 80:90 --ctstatus NONE --ctexpire 5 --ctdir reply")
    assert o["ctstate"] == (frozenset({"ESTABLISHED", "NEW"}), True)
    assert o["ctproto"] == (6, False)
    assert o["ctorigsrc"] == (HostMask(ipaddress.IPv4Address("10.1.2.3"), 8), False)
    assert o["ctorigdstport"] == (PortRange(80, 90), False)
    assert o["ctstatus"] == (frozenset(), False)
    assert o["ctexpire"] == (NumRange(5, 5), False)
    assert o["ctdir"] == ("REPLY", False)


def test_state_and_limit_defaults() -> None:
    assert opts("-m state --state RELATED")["state"] == (frozenset({"RELATED"}), False)
    o = opts("-m limit")
    assert o["limit"] == (10000 * 3600 // 3, False)  # 3/hour, kernel units
    assert o["limit-burst"] == (5, False)


def test_hashlimit_kernel_config() -> None:
    o = opts("-m hashlimit ! --hashlimit-upto 10/min --hashlimit-name x --hashlimit-mode "
             "dstip,srcport")
    assert o["hashlimit-above"][0] == HashlimitRate(6_000_000, False, 60)
    assert o["hashlimit-mode"][0] == frozenset({"dstip", "srcport"})
    assert o["hashlimit-htable-expire"][0] == 60_000
    assert o["hashlimit-srcmask"][0] == 32
    assert opts("-m hashlimit --hashlimit-upto 1/sec --hashlimit-name x",
                fam=Family.IPV6)["hashlimit-dstmask"][0] == 128


def test_marks_are_xor_mask_pairs() -> None:
    assert opts("-j MARK --or-mark 0x4000")["set-xmark"][0] == ValueMask(0x4000, 0x4000)
    assert opts("-j MARK --and-mark 0xff")["set-xmark"][0] == ValueMask(0, 0xFFFFFF00)
    assert opts("-m mark ! --mark 1/3")["mark"] == (ValueMask(1, 3), True)
    o = opts("-j CONNMARK --restore-mark --mask 0xff", table="mangle", chain="PREROUTING")
    assert o["restore-mark"][0] is True
    assert o["nfmask"][0] == o["ctmask"][0] == 0xFF


def test_set_iprange_recent() -> None:
    assert opts("-m set ! --match-set blk src,dst")["match-set"] == \
        (SetRef("blk", ("src", "dst")), True)
    assert opts("-m iprange --dst-range 1.1.1.1-1.1.1.9")["dst-range"][0] == AddrRange(
        ipaddress.IPv4Address("1.1.1.1"), ipaddress.IPv4Address("1.1.1.9"))
    o = opts("-m recent --update --seconds 60 --hitcount 4 --name ssh")
    assert o["update"] == (True, False)
    assert (o["seconds"][0], o["hitcount"][0], o["name"][0], o["side"][0]) == \
        (60, 4, "ssh", "rsource")
    assert o["mask"][0] == ipaddress.IPv4Address("255.255.255.255")


def test_statistic_connlimit_ttl() -> None:
    o = opts("-m statistic --mode random --probability 0.5")
    assert o["probability"][0] == 1 << 30
    o = opts("-m connlimit ! --connlimit-upto 4 --connlimit-mask 24")
    assert o == {"connlimit-above": (4, False), "connlimit-mask": (24, False),
                 "connlimit-saddr": (True, False)}
    assert opts("-m ttl ! --ttl 9")["ttl-eq"] == (9, True)
    assert opts("-m hl --hl-lt 3", fam=Family.IPV6)["hl-lt"] == (3, False)


def test_targets() -> None:
    assert opts("-j REJECT")["reject-with"][0] == "icmp-port-unreachable"
    assert opts("-j REJECT", fam=Family.IPV6)["reject-with"][0] == "icmp6-port-unreachable"
    assert opts("-j LOG --log-level alert --log-prefix x")["log-level"][0] == 1
    assert opts("-j NFQUEUE")["queue-num"][0] == 0
    assert opts("-j NFQUEUE --queue-balance 2:5")["queue-balance"][0] == NumRange(2, 5)
    assert opts("-p tcp --syn -j TCPMSS --clamp-mss-to-pmtu", table="mangle",
                chain="FORWARD") == {"clamp-mss-to-pmtu": (True, False)}
    assert opts("-j TTL --ttl-dec 1", table="mangle", chain="PREROUTING")["ttl-dec"][0] == 1
    assert opts("-m mac --mac-source 0:1:2:3:4:5")["mac-source"][0] == bytes(range(6))
    assert opts("-m pkttype --pkt-type broadcast")["pkt-type"][0] == 1


@pytest.mark.parametrize(("args", "table", "chain", "why"), [
    ("-p tcp -j TCPMSS --set-mss 1400", "mangle", "FORWARD", "SYN"),
    ("-j REJECT --reject-with tcp-reset", "filter", "INPUT", "protocol 6"),
    ("-j REJECT", "mangle", "INPUT", "filter table"),
    ("-m mac --mac-source 0:1:2:3:4:5", "filter", "OUTPUT", "hooks"),
    ("-m addrtype --dst-type LOCAL --limit-iface-in", "filter", "OUTPUT", "OUTPUT"),
    ("-j TTL --ttl-set 1", "filter", "INPUT", "mangle"),
    ("-m recent --set --seconds 4", "filter", "INPUT", "seconds"),
])
def test_kernel_checks_name_the_problem(args: str, table: str, chain: str, why: str) -> None:
    with pytest.raises(RestoreError, match=why):
        rule(args, table=table, chain=chain)


def test_user_chain_hook_checked_at_commit() -> None:
    text = ("*filter\n:X - [0:0]\n-A OUTPUT -j X\n-A X -j REJECT\n"
            "-A X -m mac --mac-source 0:1:2:3:4:5\nCOMMIT\n")
    with pytest.raises(RestoreError, match="mac"):
        parse_restore(text, family=Family.IPV4, filename="t")


@pytest.mark.parametrize(("table", "hook", "rule", "why"), [
    ("filter", "OUTPUT", "-A X -m addrtype --src-type LOCAL --limit-iface-in", "addrtype"),
    ("mangle", "PREROUTING", "-A X -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu", "TCPMSS"),
    ("mangle", "INPUT", "-A X -j SET --map-set m src --map-prio", "SET"),
])
def test_option_dependent_hook_checks_in_user_chains(table: str, hook: str, rule: str,
                                                     why: str) -> None:
    """The kernel checks the option against every hook reaching the user chain."""
    text = f"*{table}\n:X - [0:0]\n-A {hook} -j X\n{rule}\nCOMMIT\n"
    with pytest.raises(RestoreError, match=why):
        parse_restore(text, family=Family.IPV4, filename="t")
    unreached = f"*{table}\n:X - [0:0]\n{rule}\nCOMMIT\n"
    parse_restore(unreached, family=Family.IPV4, filename="t")
