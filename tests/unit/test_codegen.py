"""Codegen without a kernel: deterministic output, counter layout, unsupported reasons.

nf programs call a kfunc whose BTF id comes from /sys/kernel/btf/vmlinux, so the nf
cases need that file (present on any BTF kernel; no root needed).
"""

from __future__ import annotations

import os

import pytest

from bpfilter.backend import (
    CounterSlot,
    UnsupportedRule,
    compile_table,
    unsupported_reason,
)
from bpfilter.frontend.extensions.base import match_extension, target_extension
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Match, Rule, Table, Target

HAVE_BTF = os.path.exists("/sys/kernel/btf/vmlinux")
FLAVORS = ["xdp", "tc", pytest.param("nf", marks=pytest.mark.skipif(
    not HAVE_BTF, reason="nf programs need vmlinux BTF for kfunc ids"))]

BASE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
-A INPUT -s 10.0.0.0/8 ! -i eth+ -j web
-A INPUT -d 192.168.0.0/255.255.0.255 -p 17 -j DROP
-A INPUT -f
-A web ! -s 10.1.0.0/16 -j RETURN
-A web -o lo -j ACCEPT
-A FORWARD -g web
COMMIT
"""


def table(text: str = BASE) -> Table:
    rs = parse_restore(text, family=Family.IPV4)
    t = rs.table("filter")
    assert t is not None
    return t


def need_ext(kind: str, name: str) -> None:
    find = match_extension if kind == "match" else target_extension
    if find(name) is None:
        pytest.skip(f"{kind} extension {name} not written yet")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_same_input_same_bytes(flavor: str) -> None:
    a = compile_table(table(), Family.IPV4, flavor)
    b = compile_table(table(), Family.IPV4, flavor)
    assert [p.program for p in a] == [p.program for p in b]
    assert all(p.program.insn_count > 0 for p in a)


def test_programs_and_hooks() -> None:
    if not HAVE_BTF:
        pytest.skip("nf programs need vmlinux BTF")
    xdp = compile_table(table(), Family.IPV4, "xdp")
    # the ingress program, completed by nf programs (companions + OUTPUT)
    assert [(p.name, p.flavor, p.hook, p.chains) for p in xdp] == [
        ("filter_ingress", "xdp", "ingress", ("INPUT", "FORWARD")),
        ("filter_input", "nf", "INPUT", ("INPUT",)),
        ("filter_forward", "nf", "FORWARD", ("FORWARD",)),
        ("filter_output", "nf", "OUTPUT", ("OUTPUT",))]
    assert [p.program.prog_type for p in xdp] == [6, 32, 32, 32]
    assert [[m.name for m in p.program.maps] for p in xdp] == [
        ["counters", "ifnames", "ingress_seen"], ["counters", "ingress_seen", "ifnames"],
        ["counters", "ingress_seen", "ifnames"], ["counters"]]
    if HAVE_BTF:
        nf = compile_table(table(), Family.IPV4, "nf")
        assert [(p.hook, p.chains) for p in nf] == [
            ("INPUT", ("INPUT",)), ("FORWARD", ("FORWARD",)), ("OUTPUT", ("OUTPUT",))]
        assert {p.program.expected_attach_type for p in nf} == {45}  # BPF_NETFILTER


def test_counter_slots_table_wide() -> None:
    progs = compile_table(table(), Family.IPV4, "tc")
    assert progs[0].counter_slots == (
        CounterSlot("INPUT", 1), CounterSlot("INPUT", 2), CounterSlot("INPUT", 3),
        CounterSlot("INPUT", None), CounterSlot("FORWARD", 1), CounterSlot("FORWARD", None),
        CounterSlot("OUTPUT", None), CounterSlot("web", 1), CounterSlot("web", 2))
    counters = progs[0].program.maps[0]
    assert (counters.name, counters.map_type, counters.key_size, counters.value_size,
            counters.max_entries) == ("counters", 6, 4, 16, 9)


@pytest.mark.skipif(not HAVE_BTF, reason="nf programs need vmlinux BTF")
def test_ifnames_map_only_when_names_matched() -> None:
    names = [m.name for m in compile_table(table(), Family.IPV4, "xdp")[0].program.maps]
    assert names == ["counters", "ifnames", "ingress_seen"]
    plain = table(BASE.replace(" ! -i eth+", "").replace(" -o lo", ""))
    assert [m.name for m in compile_table(plain, Family.IPV4, "xdp")[0].program.maps] == [
        "counters", "ingress_seen"]


def test_unsupported_reasons() -> None:
    assert unsupported_reason(Rule(target=Target("ACCEPT")), Family.IPV4) is None
    assert unsupported_reason(Rule(target=Target("mychain")), Family.IPV4) is None
    # IPv6 (H11): compiled, but only the matchers checked for the IPv6 prologue
    assert unsupported_reason(Rule(), Family.IPV6) is None
    assert "IPv6" in (unsupported_reason(Rule(matches=(Match("length", ()),)), Family.IPV6)
                      or "")
    why = unsupported_reason(Rule(matches=(Match("string"),)), Family.IPV4)
    assert why is not None and "string" in why
    assert "QUEUE" in (unsupported_reason(Rule(target=Target("QUEUE")), Family.IPV4) or "")
    why = unsupported_reason(Rule(matches=(Match("tcp", ()),), target=Target("SNAT")),
                             Family.IPV4)
    if target_extension("SNAT") is not None:
        assert why is not None and "SNAT" in why


def test_extension_target_unsupported() -> None:
    need_ext("target", "LOG")
    assert "LOG" in (unsupported_reason(Rule(target=Target("LOG")), Family.IPV4) or "")


def test_compile_refuses_unsupported_reachable_rule() -> None:
    t = table()
    bad = Rule(matches=(Match("conntrack"),), target=Target("ACCEPT"))
    web = t.chain("web")
    assert web is not None
    t2 = Table("filter", tuple(c if c.name != "web" else
                               c.__class__(c.name, c.policy, c.counters, (*c.rules, bad))
                               for c in t.chains))
    with pytest.raises(UnsupportedRule, match="web rule 3"):
        compile_table(t2, Family.IPV4, "xdp")


def test_unreachable_chain_is_not_compiled() -> None:
    text = BASE.replace(":web - [0:0]", ":web - [0:0]\n:orphan - [0:0]")
    t = table(text)
    orphan = t.chain("orphan")
    assert orphan is not None
    bad = Rule(matches=(Match("conntrack"),))
    t2 = Table("filter", tuple(c if c.name != "orphan" else
                               c.__class__(c.name, None, c.counters, (bad,))
                               for c in t.chains))
    assert compile_table(t2, Family.IPV4, "xdp")


def test_only_filter_ipv4() -> None:
    with pytest.raises(UnsupportedRule):
        compile_table(Table("nat"), Family.IPV4, "xdp")
    assert compile_table(Table("filter"), Family.IPV6, "xdp")  # IPv6 compiles (H11)


def test_loop_refused() -> None:
    from bpfilter.ir import Chain

    t = Table("filter", (Chain("INPUT", "ACCEPT", rules=(Rule(target=Target("a")),)),
                         Chain("a", rules=(Rule(target=Target("b")),)),
                         Chain("b", rules=(Rule(target=Target("a", goto=True)),))))
    with pytest.raises(UnsupportedRule, match="loop"):
        compile_table(t, Family.IPV4, "xdp")


def test_jump_to_missing_chain_refused() -> None:
    from bpfilter.ir import Chain

    t = Table("filter", (Chain("INPUT", "ACCEPT", rules=(Rule(target=Target("nope")),)),))
    with pytest.raises(UnsupportedRule, match="unknown chain"):
        compile_table(t, Family.IPV4, "xdp")
