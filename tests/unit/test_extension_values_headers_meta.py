"""IPsec, IPv6-header and meta matches: the typed values they put in the IR."""

from __future__ import annotations

import ipaddress

import pytest

from bpfilter.frontend.extensions.base import ExtensionError, match_extension
from bpfilter.frontend.extensions.policy import PolicyElem
from bpfilter.frontend.extensions.sctp import ALL_CHUNKS, SctpChunks
from bpfilter.frontend.extensions.srh import SrhSid
from bpfilter.frontend.extensions.types import NumRange, PortRange, ValueMask
from bpfilter.frontend.extensions.u32 import U32Test
from bpfilter.ir import Family, Negatable, Option
from tests.unit.extension_rule import restore_rule

V6 = Family.IPV6


def opts(rule: str, fam: Family = Family.IPV4, table: str = "filter", chain: str = "INPUT"):
    """The options of the last match of ``rule``."""
    return restore_rule(rule, fam, table, chain).matches[-1].options


def test_spi_ranges():
    assert opts("-p esp -m esp --espspi 3:") == (Option("espspi", NumRange(3, 0xFFFFFFFF)),)
    assert opts("-p ah -m ah ! --ahspi 7") == (Option("ahspi", NumRange(7, 7), True),)
    # "any SPI" is no constraint at all, but a negated "any" (matches nothing) is kept.
    assert opts("-p esp -m esp --espspi :") == ()
    assert opts("-p esp -m esp ! --espspi :") == (
        Option("espspi", NumRange(0, 0xFFFFFFFF), True),)
    # libxt_ipcomp has no init: no --ipcompspi means CPI 0 only.
    assert opts("-p ipcomp -m ipcomp") == (Option("ipcompspi", NumRange(0, 0)),)


def test_ah_is_family_specific():
    assert match_extension("ah", Family.IPV4) is not match_extension("ah", V6)
    assert opts("-m ah --ahlen 8 --ahres", V6) == (Option("ahlen", 8), Option("ahres"))
    with pytest.raises(ExtensionError, match="only valid for protocol 51"):
        restore_rule("-m ah --ahspi 1")


def test_sctp_values():
    o = opts("-p sctp -m sctp --sport 5 --chunk-types any DATA:Ib,ABORT")
    assert o[0] == Option("sport", PortRange(5, 5))
    assert o[1].value == SctpChunks("any", frozenset({0, 6}), ((0, 0b1000, 0b1010),))
    assert opts("-p sctp -m sctp --chunk-types all ALL")[0].value.types == ALL_CHUNKS
    with pytest.raises(ExtensionError, match="protocol 132"):
        restore_rule("-p udp -m sctp --dport 1")


def test_dccp_values():
    o = opts("-p dccp -m dccp ! --dccp-types ACK,REQUEST --dccp-option 3")
    assert o == (Option("dccp-types", frozenset({0, 3}), True), Option("dccp-option", 3))


def test_time_is_the_full_kernel_struct():
    o = dict((x.name, x.value) for x in opts(
        "-m time --timestart 22:00 --timestop 02:00 --contiguous ! --weekdays Sat,Sun "
        "--datestart 2020-01-01 --kerneltz"))
    assert o["timestart"] == 22 * 3600 and o["timestop"] == 2 * 3600
    assert o["weekdays"] == 0b00111110  # Mon..Fri
    assert o["datestart"] == 1577836800
    assert o["datestop"] == 0x7FFFFFFF  # the kernel default, printed by 1.8.9
    assert o["kerneltz"] is True and o["contiguous"] is True


def test_meta_values():
    assert opts("-m quota ! --quota 100") == (Option("quota", 100, True),)
    assert opts("-m cpu --cpu 3") == (Option("cpu", 3),)
    assert opts("-m realm --realm 0x10/0xf0") == (Option("realm", ValueMask(0x10, 0xF0)),)
    assert opts("-m devgroup --dst-group 7", chain="FORWARD") == (
        Option("dst-group", ValueMask(7, 0xFFFFFFFF)),)
    assert opts("-m connlabel ! --label 5 --set") == (Option("label", 5, True), Option("set"))
    assert opts("-m connbytes ! --connbytes 10: --connbytes-mode bytes --connbytes-dir reply"
                ) == (Option("connbytes", NumRange(10, 2**64 - 1), True),
                      Option("connbytes-mode", "bytes"), Option("connbytes-dir", "reply"))
    # --cluster-local-node N is the kernel's node mask bit N-1.
    assert opts("-m cluster --cluster-total-nodes 4 --cluster-local-node 3 "
                "--cluster-hash-seed 9", table="mangle", chain="PREROUTING") == (
        Option("cluster-local-nodemask", 0b100), Option("cluster-total-nodes", 4),
        Option("cluster-hash-seed", 9))


def test_ipv6_header_values():
    assert opts("-m frag --fragid 5:9 --fragmore", V6) == (
        Option("fragid", NumRange(5, 9)), Option("fragmore"))
    assert opts("-m hbh --hbh-opts 1:2,5", V6) == (Option("hbh-opts", ((1, 2), (5, None))),)
    assert opts("-m rt --rt-type 0 --rt-0-addrs ::1", V6)[1] == Option(
        "rt-0-addrs", (ipaddress.IPv6Address("::1"),))
    assert opts("-p mh -m mh --mh-type bu", V6) == (Option("mh-type", NumRange(5, 5)),)
    assert opts("-m ipv6header ! --header frag,ah --soft", V6) == (
        Option("header", frozenset({44, 51}), True), Option("soft"))
    assert opts("-m srh --srh-lsid c::1/64", V6) == (
        Option("srh-lsid", SrhSid(ipaddress.IPv6Address("c::1"), 64)),)


def test_payload_values():
    o = opts('-m string --hex-string "|00|ab" --algo kmp --to 40')
    assert o == (Option("string", b"\x00ab"), Option("algo", "kmp"), Option("to", 40))
    assert opts('-m bpf --bytecode "2,48 0 0 9,6 0 0 1"') == (
        Option("bytecode", ((48, 0, 0, 9), (6, 0, 0, 1))),)
    u = opts('-m u32 --u32 "0>>22&0x3C@12=0x10:0x20,5"')[0].value
    assert u == (U32Test(0, ((">>", 22), ("&", 0x3C), ("@", 12)),
                         (NumRange(0x10, 0x20), NumRange(5, 5))),)


def test_socket_owner_values():
    assert opts("-m owner --uid-owner 5-9 ! --gid-owner 3", chain="OUTPUT") == (
        Option("uid-owner", NumRange(5, 9)), Option("gid-owner", NumRange(3, 3), True))
    assert opts("-m physdev ! --physdev-in br+", chain="FORWARD") == (
        Option("physdev-in", "br+", True),)


def test_policy_elements():
    o = opts("-m policy --dir in --pol ipsec --strict --spi 0x10 --proto esp --next "
             "--mode tunnel ! --tunnel-src 10.0.0.0/8")
    assert o[:3] == (Option("dir", "in"), Option("pol", "ipsec"), Option("strict"))
    first, second = o[3].value, o[4].value
    assert first == PolicyElem(spi=Negatable(16), proto=Negatable(50))
    assert second.mode == Negatable("tunnel")
    assert second.tunnel_src.negated and second.tunnel_src.value.prefixlen == 8


@pytest.mark.parametrize("name,table,hooks,ok", [
    ("owner", "filter", ["OUTPUT"], True),
    ("owner", "filter", ["INPUT", "OUTPUT"], False),
    ("eui64", "raw", ["PREROUTING"], True),
    ("eui64", "filter", ["OUTPUT"], False),
    ("socket", "mangle", ["PREROUTING", "INPUT"], True),
    ("rpfilter", "filter", ["PREROUTING"], False),
    ("rpfilter", "raw", ["PREROUTING"], True),
    ("cgroup", "filter", ["FORWARD"], False),
    ("osf", "filter", ["INPUT"], True),
])
def test_user_chain_hook_checks(name, table, hooks, ok):
    """check_hooks: a rule in a user chain is checked against every hook reaching it."""
    fam = V6 if name == "eui64" else Family.IPV4
    ext = match_extension(name, fam)
    assert ext is not None
    if ok:
        ext.check_hooks(table, hooks, fam)
    else:
        with pytest.raises(ExtensionError):
            ext.check_hooks(table, hooks, fam)


def test_user_chain_rule_is_not_hook_checked_at_parse():
    # In a user chain the hooks are unknown until COMMIT: finalize must not refuse.
    assert opts("-m owner --uid-owner 1", chain="mychain") == (
        Option("uid-owner", NumRange(1, 1)),)
