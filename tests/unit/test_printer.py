"""Printer: identity fixtures (text prints back unchanged) and pairs (input → canonical)."""

from __future__ import annotations

import pytest

from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule, print_ruleset
from bpfilter.ir import Family

IDENTITY = [
    """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -s 10.0.0.0/8 -d 1.2.3.4/32 -i eth+ -p tcp -m tcp --dport 22 -j A
-A INPUT ! -s 1.0.255.0/255.0.255.0 -p udp -m udp ! --sport 1:2 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 1,2:3 -m comment --comment "x y" -g B
-A A -p icmp -m icmp --icmp-type 8 -j RETURN
-A B -f -j DROP
COMMIT
""",
]

PAIRS = [
    ("*filter\n:Z - [0:0]\n:A - [0:0]\n:OUTPUT DROP [0:0]\n-A Z -j A\nCOMMIT\n",
     "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n:A - [0:0]\n"
     ":Z - [0:0]\n-A Z -j A\nCOMMIT\n"),
    ("*raw\n-A PREROUTING -p tcp --sport 1024: -m comment --comment a'b\nCOMMIT\n",
     "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
     "-A PREROUTING -p tcp -m tcp --sport 1024:65535 -m comment --comment \"a\\'b\"\nCOMMIT\n"),
]


@pytest.mark.parametrize("text", IDENTITY)
def test_identity(text):
    assert print_ruleset(parse_restore(text, family=Family.IPV4)) == text


@pytest.mark.parametrize("text,expected", PAIRS)
def test_pairs(text, expected):
    assert print_ruleset(parse_restore(text, family=Family.IPV4)) == expected


def test_print_rule_single_line():
    rs = parse_restore("*filter\n-A INPUT -p udp --dport 53 -j ACCEPT\nCOMMIT\n",
                       family=Family.IPV4)
    rule = rs.table("filter").chain("INPUT").rules[0]
    assert print_rule(rule, "INPUT", Family.IPV4) == "-A INPUT -p udp -m udp --dport 53 -j ACCEPT"
