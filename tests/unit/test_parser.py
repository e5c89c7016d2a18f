"""Parser behaviour pinned against what iptables-legacy-restore 1.8.9 does (checked in a netns)."""

from __future__ import annotations

import pytest

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.lexer import split_line
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import Family

V4 = Family.IPV4


def rules(text: str, family: Family = V4, **kw) -> list[str]:
    rs = parse_restore(text, family=family, **kw)
    return [ln for ln in print_ruleset(rs).splitlines() if ln.startswith("-A")]


def one(line: str, family: Family = V4) -> list[str]:
    return rules(f"*filter\n:FOO - [0:0]\n{line}\nCOMMIT\n", family)


def refused(text: str, family: Family = V4, **kw) -> RestoreError:
    with pytest.raises(RestoreError) as info:
        parse_restore(text, family=family, **kw)
    return info.value


@pytest.mark.parametrize("line,words", [
    ('-m comment --comment "a b"', ["-m", "comment", "--comment", "a b"]),
    ('--comment "a\\"b"', ["--comment", 'a"b']),
    ('--comment ""  x', ["--comment", "", "x"]),
    ("--comment 'a b'", ["--comment", "'a", "b'"]),
    ('a"b c"d', ["ab c", "d"]),
    ("a\\b\tc", ["a\\b", "c"]),
])
def test_lexer_quoting(line, words):
    assert split_line(line) == words


def test_multiple_addresses_expand_source_major():
    assert one("-A INPUT -s 1.2.3.4,5.6.7.8 -d 9.9.9.9,8.8.8.8") == [
        "-A INPUT -s 1.2.3.4/32 -d 9.9.9.9/32", "-A INPUT -s 1.2.3.4/32 -d 8.8.8.8/32",
        "-A INPUT -s 5.6.7.8/32 -d 9.9.9.9/32", "-A INPUT -s 5.6.7.8/32 -d 8.8.8.8/32"]


def test_insert_with_multiple_addresses_reverses():
    assert one("-I INPUT -s 1.2.3.4,5.6.7.8") == [
        "-A INPUT -s 5.6.7.8/32", "-A INPUT -s 1.2.3.4/32"]


@pytest.mark.parametrize("line,printed", [
    ("-A INPUT -s 10 -d 10.1.2 -j ACCEPT", "-A INPUT -s 10.0.0.0/32 -d 10.1.2.0/32 -j ACCEPT"),
    ("-A INPUT -s 010.0x10.1.1/255.0.255.0", "-A INPUT -s 8.0.1.0/255.0.255.0"),
    ("-A INPUT -p 58", "-A INPUT -p ipv6-icmp"),
    ("-A INPUT -p all", "-A INPUT"),
    ("-A INPUT ! -f -p gre", "-A INPUT -p gre ! -f"),
    ("-A INPUT -p TCP --dp=22 --tcp-fl SYN,ACK SYN",
     "-A INPUT -p tcp -m tcp --dport 22 --tcp-flags SYN,ACK SYN"),
    ("-A INPUT -i + ! -s 0/0", "-A INPUT ! -s 0.0.0.0/0"),
    ("-A INPUT -p 6 --syn -j FOO", "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j FOO"),
    ("-A INPUT -iVeth0", "-A INPUT -i -iVeth0"),
    ("-A INPUT -p tcp -m multiport --dports ssh,80:90",
     "-A INPUT -p tcp -m multiport --dports 22,80:90"),
    ("-A FOO -g FOO", "-A FOO -g FOO"),
])
def test_rule_canonical_text(line, printed):
    assert one(line) == [printed]


@pytest.mark.parametrize("line,message", [
    ("-A INPUT -p ! tcp", 'unknown protocol "!" specified'),
    ("-A INPUT ! ! -p tcp", "multiple consecutive ! not allowed"),
    ("-A INPUT ! -j ACCEPT", "cannot have ! before -j"),
    ("-A INPUT --sport 1", 'unknown option "--sport"'),
    ("-A INPUT -p tcp -s", 'option "-s" requires an argument'),
    ("-A INPUT -p tcp extra", "Bad argument `extra'"),
    ("-A INPUT -g ACCEPT", "goto 'ACCEPT' is not a chain"),
    ("-A INPUT -j NOPE", "Couldn't load target `NOPE'"),
    ("-A INPUT -m nope", "Couldn't load match `nope'"),
    ("-A INPUT -ptcp", 'unknown protocol "-ptcp" specified'),
    ("-A INPUT -p tcp -- --dport 22", "unknown arguments found on commandline"),
    ("-A INPUT -s host.example", "host/network `host.example' not found"),
    ("-A INPUT -o eth0", "Can't use -o with INPUT"),
    ("-A INPUT -i eth0 !", "nothing appropriate following !"),
    ("-A INPUT -m tcp --dport 1", "only valid for protocol 6"),
    ("-A INPUT -p tcp --dport 4:3", "invalid portrange"),
    ("-N ACCEPT", "chain name may not clash with target name"),
    ("-A INPUT -t nat", "-t option cannot be used"),
    ("-I INPUT 0 -j ACCEPT", "Invalid rule number `0'"),
])
def test_refused_like_iptables(line, message):
    e = refused(f"*filter\n{line}\nCOMMIT\n")
    assert message in e.message
    assert e.line == 2


@pytest.mark.parametrize("text,line", [
    ("*filter\n-I INPUT 2 -j ACCEPT\nCOMMIT\n", 2),
    ("*filter\n-D INPUT 1\nCOMMIT\n", 2),
    ("*filter\n-A INPUT -j ACCEPT\n-D INPUT -j DROP\nCOMMIT\n", 3),
    ("*filter\n-P INPUT RETURN\nCOMMIT\n", 2),
    ("*filter\n:FOO - [0:0]\n-A INPUT -j FOO\n-X FOO\nCOMMIT\n", 4),
    ("*filter\n-N X\n-A X -j ACCEPT\n-X X\nCOMMIT\n", 4),
    ("*filter\n:FOO - [0:0]\n-A INPUT -j FOO\n-A FOO -j FOO\nCOMMIT\n", 5),
    (" *filter\nCOMMIT\n", 1),
    ("*filter\n-A INPUT -j ACCEPT\n*nat\nCOMMIT\n", 3),
    ("*filter\n-A INPUT -j ACCEPT\n", 3),
    ("*filter\n-A INPUT -j ACCEPT\nCOMMIT", 3),
    ("*foo\nCOMMIT\n", 1),
])
def test_refused_at_line(text, line):
    assert refused(text).line == line


def test_unreachable_loop_is_accepted():
    assert rules("*filter\n:A - [0:0]\n:B - [0:0]\n-A A -g B\n-A B -g A\nCOMMIT\n") == [
        "-A A -g B", "-A B -g A"]


def test_policy_and_counters():
    rs = parse_restore("*filter\n:INPUT DROP [5:6]\n[1:2] -A INPUT -j ACCEPT\nCOMMIT\n",
                       family=V4, counters=True)
    out = print_ruleset(rs, counters=True)
    assert ":INPUT DROP [5:6]" in out and "[1:2] -A INPUT -j ACCEPT" in out


def test_noflush_edits_base_and_flush_replaces():
    base = parse_restore("*filter\n:X - [0:0]\n-A INPUT -j X\nCOMMIT\n", family=V4)
    kept = parse_restore("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", family=V4, noflush=True,
                         base=base)
    assert [r.target.name for r in kept.table("filter").chain("INPUT").rules] == ["X", "ACCEPT"]
    replaced = parse_restore("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", family=V4, base=base)
    assert replaced.table("filter").chain("X") is None


def test_table_filter_skips_other_tables():
    rs = parse_restore("*nat\n-A BOGUS\nCOMMIT\n*filter\n-A INPUT\nCOMMIT\n", family=V4,
                       table_filter="filter")
    assert [t.name for t in rs.tables] == ["filter"]


def test_nat_drop_inhibited():
    assert "not intended for filtering" in refused("*nat\n-A INPUT -j DROP\nCOMMIT\n").message


def test_ipv6_rules():
    assert one("-A INPUT -s ::ffff:1.2.3.4,fe80::1/ffff::ff -p icmpv6 --icmpv6-type ping",
               Family.IPV6) == [
        "-A INPUT -s ::ffff:1.2.3.4/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128",
        "-A INPUT -s fe80::1/ffff::ff -p ipv6-icmp -m icmp6 --icmpv6-type 128"]
    assert "not supported in IPv6" in refused("*filter\n-A INPUT -f\nCOMMIT\n",
                                              Family.IPV6).message


def test_rename_updates_jumps():
    assert rules("*filter\n-N A\n-A INPUT -j A\n-E A B\nCOMMIT\n") == ["-A INPUT -j B"]


def test_error_keeps_tables_committed_before_it():
    e = refused("*nat\n-A OUTPUT -j ACCEPT\nCOMMIT\n*filter\n-A INPUT -j NOPE\nCOMMIT\n")
    assert e.line == 5
    assert [t.name for t in e.committed.tables] == ["nat"]
