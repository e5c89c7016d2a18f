"""Helpers under the parser: libxtables number/port rules, getopt_long, addresses."""

from __future__ import annotations

import ipaddress

import pytest

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.frontend.extensions.types import (
    NumRange,
    PortRange,
    ValueMask,
    parse_number,
    parse_port,
    parse_port_range,
    parse_value_mask,
    try_number,
)
from bpfilter.frontend.getopt import NON_OPTION, UNKNOWN, GetOpt, LongOpt, parse_optstring
from bpfilter.frontend.netparse import format_address, inet_ntop, parse_addresses, parse_protocol
from bpfilter.ir import Family


@pytest.mark.parametrize("text,value", [
    ("10", 10), ("0x10", 16), ("010", 8), (" +5", 5), ("0", 0), ("-1", None), ("08", None),
    ("", None), ("1a", None), ("4294967295", 4294967295), ("4294967296", None),
])
def test_strtoui_semantics(text, value):
    assert try_number(text) == value


def test_parse_number_range_and_message():
    assert parse_number("0x1f", 0, 31) == 31
    with pytest.raises(ExtensionError, match='Invalid value "32"'):
        parse_number("32", 0, 31)


def test_ports_and_services():
    assert parse_port("ssh", "tcp") == 22
    assert parse_port("0x50") == 80
    with pytest.raises(ExtensionError, match="invalid port/service `nosuch' specified"):
        parse_port("nosuch", "tcp")
    assert parse_port_range(":", "tcp") == PortRange(0, 65535)
    assert parse_port_range("1024:", "tcp") == PortRange(1024, 65535)
    assert parse_port_range(":http", "tcp") == PortRange(0, 80)
    with pytest.raises(ExtensionError, match="min > max"):
        parse_port_range("4:3", "tcp")


def test_value_mask_and_numrange_text():
    assert parse_value_mask("0x10/0xff") == ValueMask(16, 255)
    assert str(ValueMask(1, 0xFFFFFFFF)) == "0x1"
    assert str(NumRange(3, 3)) == "3" and str(NumRange(1, 2)) == "1:2"


def _scan(argv, longopts):
    g = GetOpt(argv, parse_optstring("-:p:fm:"))
    out = []
    while (c := g.next(longopts)) is not None:
        out.append((c, g.optarg))
    return out, g.optind


LONG = (LongOpt("dport", 1, "D"), LongOpt("dports", 1, "P"), LongOpt("syn", 0, "S"))


def test_getopt_long_rules():
    assert _scan(["--dport", "1", "--dports=2", "--sy"], LONG)[0] == [
        ("D", "1"), ("P", "2"), ("S", None)]
    assert _scan(["--dp", "1"], LONG)[0][0] == (UNKNOWN, None)  # ambiguous prefix
    assert _scan(["--syn=1"], LONG)[0] == [(UNKNOWN, None)]  # no argument allowed
    assert _scan(["-ptcp", "-fm", "x", "!", "y"], LONG)[0] == [
        ("p", "tcp"), ("f", None), ("m", "x"), (NON_OPTION, "!"), (NON_OPTION, "y")]
    assert _scan(["-f", "--", "-f"], LONG) == ([("f", None)], 2)


def test_addresses():
    a = parse_addresses("10.1.2.3/8,1.2", Family.IPV4)
    assert [str(x) for x in a] == ["10.0.0.0/8", "1.2.0.0/32"]
    assert str(parse_addresses("1.2.3.4/0", Family.IPV4)[0]) == "0.0.0.0/0"
    with pytest.raises(ExtensionError, match="host/network `example.com' not found"):
        parse_addresses("example.com", Family.IPV4)
    with pytest.raises(ExtensionError, match="invalid mask `33' specified"):
        parse_addresses("1.2.3.4/33", Family.IPV4)
    with pytest.raises(ExtensionError):
        parse_addresses("fe80::1%eth0", Family.IPV6)
    six = parse_addresses("2001:db8::1/ffff:ffff::", Family.IPV6)[0]
    assert format_address(six, Family.IPV6) == "2001:db8::/32"


@pytest.mark.parametrize("addr,text", [
    ("::3", "::3"), ("::1.2.3.4", "::1.2.3.4"), ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ("::1", "::1"), ("2001:db8::", "2001:db8::"), ("::", "::"),
])
def test_inet_ntop6(addr, text):
    assert inet_ntop(ipaddress.IPv6Address(addr)) == text


def test_protocols():
    assert parse_protocol("tcp") == 6
    assert parse_protocol("ipv6-icmp") == 58
    assert parse_protocol("0x11") == 17
    with pytest.raises(ExtensionError, match='unknown protocol "nope" specified'):
        parse_protocol("nope")
