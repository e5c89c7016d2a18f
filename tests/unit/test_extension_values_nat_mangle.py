"""nat/mangle/raw targets and their matches: typed values, and placement enforced.

The .t and 1.8.9 reference tests check text; these check the values themselves
(what a compiler would read) and the kernel's table/hook/protocol rules,
including ``check_hooks`` for rules in user chains.
"""

from __future__ import annotations

import ipaddress

import pytest

from bpfilter.frontend.extensions.base import (
    ExtensionError,
    target_extension,
)
from bpfilter.frontend.extensions.ct import CtZone
from bpfilter.frontend.extensions.nat import NatRange
from bpfilter.frontend.extensions.types import PortRange, ValueMask
from bpfilter.ir import Address, Family, Negatable, Option
from tests.unit.extension_rule import restore_rule

V4, V6 = Family.IPV4, Family.IPV6
TCP = Negatable(6)


def _final(kind, name, words, family=V4, table="filter", chain="INPUT", proto=None):
    """The finalized options of extension ``name`` in a rule restored on its own."""
    head = "" if proto is None else f"{'! ' if proto.negated else ''}-p {proto.value} "
    flag = "-j" if kind == "target" else "-m"
    rule = restore_rule(f"{head}{flag} {name} {words}", family, table, chain)
    if kind == "target":
        assert rule.target is not None and rule.target.name == name
        return rule.target.options
    return next(m.options for m in rule.matches if m.module == name)


def _get(opts, name):
    return next(o for o in opts if o.name == name)


def test_dnat_range_value():
    opts = _final("target", "DNAT", "--to-destination 10.0.0.1-10.0.0.9:80-90/100",
                  table="nat", chain="PREROUTING", proto=TCP)
    assert _get(opts, "to-destination").value == NatRange(
        ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.9"),
        PortRange(80, 90), 100,
    )


def test_snat_shift_base_is_lost_like_the_kernel_struct():
    opts = _final("target", "SNAT", "--to-source 1.1.1.1:10-20/30",
                  table="nat", chain="POSTROUTING", proto=TCP)
    assert _get(opts, "to-source").value.base == 0


def test_ipv6_dnat_port_only():
    opts = _final("target", "DNAT", "--to-destination []:8080", family=V6,
                  table="nat", chain="OUTPUT", proto=TCP)
    assert _get(opts, "to-destination").value == NatRange(None, None, PortRange(8080, 8080))


def test_netmap_value_is_masked_network():
    opts = _final("target", "NETMAP", "--to 10.1.2.3/16", table="nat", chain="PREROUTING")
    assert _get(opts, "to").value == Address(
        ipaddress.IPv4Address("10.1.0.0"), ipaddress.IPv4Address("255.255.0.0")
    )


@pytest.mark.parametrize(
    "words,vm",
    [
        ("--and-tos 0x12", ValueMask(0x00, 0xED)),
        ("--or-tos 0x12", ValueMask(0x12, 0x12)),
        ("--xor-tos 0x12", ValueMask(0x12, 0x00)),
        ("--set-tos Minimize-Delay", ValueMask(0x10, 0x3F)),
        ("--set-tos 0x1f", ValueMask(0x1F, 0xFF)),
    ],
)
def test_tos_target_folds_to_value_mask(words, vm):
    opts = _final("target", "TOS", words, table="mangle", chain="OUTPUT")
    assert opts == (Option("set-tos", vm),)


def test_dscp_class_folds_to_number():
    opts = _final("match", "dscp", "! --dscp-class AF41")
    assert opts == (Option("dscp", 0x22, True),)


def test_ct_zone_folding():
    opts = _final("target", "CT", "--zone mark --zone-orig 5", table="raw", chain="OUTPUT")
    assert _get(opts, "zone").value == CtZone(5, True, "orig")
    opts = _final("target", "CT", "--ctevents mark,new", table="raw", chain="OUTPUT")
    assert _get(opts, "ctevents").value == frozenset({"new", "mark"})


def test_hmark_tuple_folds_into_masks():
    opts = _final("target", "HMARK", "--hmark-tuple src,sport,ct --hmark-rnd 4 --hmark-mod 8",
                  family=V6)
    vals = {o.name: o.value for o in opts}
    assert vals["hmark-src-prefix"] == 128
    assert vals["hmark-sport-mask"] == 0xFFFF
    assert vals["hmark-tuple"] is True


def test_rateest_target_keeps_kernel_timing():
    opts = _final("target", "RATEEST",
                  "--rateest-name R --rateest-interval 300ms --rateest-ewmalog 20s")
    vals = {o.name: o.value for o in opts}
    assert vals["rateest-interval"] == 500_000  # rounded up to 250 ms * 2^k
    assert vals["rateest-ewmalog"] == 6  # 500 ms * 2^6 = 32 s


def test_rateest_match_rate_in_bytes():
    opts = _final("match", "rateest", "--rateest R --rateest-lt --rateest-bps 8kbit")
    assert _get(opts, "rateest-bps2").value == 1000


def test_tcpoptstrip_names_to_kinds():
    opts = _final("target", "TCPOPTSTRIP", "--strip-options mss,timestamp,30",
                  table="mangle", chain="FORWARD", proto=TCP)
    assert opts == (Option("strip-options", frozenset({2, 8, 30})),)


# --- placement ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name,table,hooks,ok",
    [
        ("DNAT", "nat", {"PREROUTING", "OUTPUT"}, True),
        ("DNAT", "nat", {"PREROUTING", "POSTROUTING"}, False),
        ("DNAT", "mangle", {"PREROUTING"}, False),
        ("SNAT", "nat", {"INPUT", "POSTROUTING"}, True),
        ("MASQUERADE", "nat", {"INPUT"}, False),
        ("REDIRECT", "nat", {"OUTPUT"}, True),
        ("CT", "raw", {"PREROUTING", "OUTPUT"}, True),
        ("NOTRACK", "mangle", {"PREROUTING"}, False),
        ("TPROXY", "mangle", {"PREROUTING"}, True),
        ("TPROXY", "mangle", {"PREROUTING", "INPUT"}, False),
        ("CLASSIFY", "filter", {"FORWARD", "OUTPUT"}, True),
        ("CLASSIFY", "mangle", {"INPUT"}, False),
        ("SYNPROXY", "filter", {"INPUT", "FORWARD"}, True),
        ("SYNPROXY", "filter", {"OUTPUT"}, False),
        ("SECMARK", "security", {"INPUT"}, True),
        ("SECMARK", "filter", {"INPUT"}, False),
        ("TEE", "raw", {"PREROUTING"}, True),
        ("DNAT", "nat", set(), True),  # unreachable user chain: the kernel checks nothing
    ],
)
def test_check_hooks_for_user_chains(name, table, hooks, ok):
    ext = target_extension(name, V4)
    if ok:
        ext.check_hooks(table, hooks, V4)
    else:
        with pytest.raises(ExtensionError):
            ext.check_hooks(table, hooks, V4)


def test_user_chain_rule_is_accepted_until_commit():
    # In a user chain the hooks are only known at COMMIT: finalize accepts.
    _final("target", "DNAT", "--to-destination 1.1.1.1", table="nat", chain="MYCHAIN")
    with pytest.raises(ExtensionError):
        _final("target", "DNAT", "--to-destination 1.1.1.1", table="nat", chain="POSTROUTING")


def test_npt_only_ipv6():
    assert target_extension("DNPT", V4) is None
    assert target_extension("DNPT", V6) is not None
