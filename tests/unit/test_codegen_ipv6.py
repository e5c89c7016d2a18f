"""IPv6 codegen without a kernel: what compiles, into which programs, and what does not.

Why: the kernel tests (tests/kernel/test_ipv6_*.py) judge behaviour; these pin the
contract the planner relies on — which rules `unsupported_reason` lets through for
IPv6, that every flavor yields its program set, and that the extension header walk
stays small (a loop, not an unrolled chain).
"""

from __future__ import annotations

import pytest

from bpfilter.backend import compile_table, unsupported_reason
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family

RULES = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:U - [0:0]
-A INPUT -s 2001:db8::/32 -d ::1/ffff:0:ffff:: -i eth0 -p udp --dport 53 -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT
-A INPUT -m hl --hl-lt 5 -m hbh --hbh-len 8 -m dst -m rt --rt-type 2 -j U
-A INPUT -m frag --fragid 1:5 --fragmore -m ipv6header --header hop,frag --soft -j DROP
-A INPUT -p tcp -m multiport --dports 22,80 -j ACCEPT
-A FORWARD -o eth1 ! -p tcp -j DROP
-A U -j RETURN
COMMIT
"""


def table():  # noqa: ANN201
    t = parse_restore(RULES, family=Family.IPV6).table("filter")
    assert t is not None
    return t


def rule(text: str):  # noqa: ANN201
    body = f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {text}\nCOMMIT\n"
    return parse_restore(body, family=Family.IPV6).table("filter").chain("INPUT").rules[0]


@pytest.mark.parametrize("text", ["-p udp --dport 53 -j ACCEPT", "-m ipv6header --header none",
                                  "-m frag --fraglast -j DROP", "-m state --state NEW"])
def test_compiled(text: str) -> None:
    assert unsupported_reason(rule(text), Family.IPV6) is None


@pytest.mark.parametrize("text,why", [
    ("-m length --length 100", "IPv6"),  # an IPv4 matcher (reads IPv4 offsets)
    ("-m hbh --hbh-opts 1:2", "hbh-opts"),
    ("-m eui64", "IPv6"),
    ("-j REJECT", "REJECT"),
    ("-m conntrack --ctorigsrc 2001:db8::1", "IPv6"),
])
def test_not_compiled(text: str, why: str) -> None:
    assert why in (unsupported_reason(rule(text), Family.IPV6) or "")


def test_program_sets() -> None:
    shapes = {fl: [(p.flavor, p.hook) for p in compile_table(table(), Family.IPV6, fl)]
              for fl in ("nf", "xdp", "tc")}
    assert shapes["nf"] == [("nf", "INPUT"), ("nf", "FORWARD"), ("nf", "OUTPUT")]
    for fl in ("xdp", "tc"):  # ingress + nf companions + OUTPUT
        assert shapes[fl] == [(fl, "ingress"), ("nf", "INPUT"), ("nf", "FORWARD"),
                              ("nf", "OUTPUT")]


def test_walk_is_a_loop_not_unrolled() -> None:
    """An empty table's nf program is the prologue alone: the walk must stay small."""
    empty = parse_restore("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", family=Family.IPV6)
    prog = compile_table(empty.table("filter"), Family.IPV6, "nf")[0]
    assert len(prog.program.insns) // 8 < 1000
    assert "bpf_iter_num_next" in prog.llvm_ir
