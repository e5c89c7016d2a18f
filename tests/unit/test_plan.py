"""The planner: per-chain fallback, nf-only matches kept off xdp/tc, row reasons."""

from __future__ import annotations

from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.plan import plan_ruleset

RULES = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:common - [0:0]
:orphan - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -j common
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -m state --state INVALID -j DROP
-A FORWARD -j common
-A common -p tcp -m tcp --dport 22 -j ACCEPT
-A orphan -j LOG
COMMIT
"""


def plan(text: str = RULES, hook: str = "auto"):  # noqa: ANN201
    return plan_ruleset(parse_restore(text, family=Family.IPV4), hook)


def rows(p) -> dict[tuple[str, int], tuple[str, str]]:  # noqa: ANN001
    return {(r.chain, r.rule): (r.placement, r.reason) for r in p.rules}


def test_input_forward_hand_off_output_goes_to_netfilter_whole() -> None:
    p = plan(RULES.replace("COMMIT", "-A OUTPUT -p udp -j REJECT\nCOMMIT"))
    assert p.flavor == "nf" and p.handoff_chains == frozenset({"INPUT"})
    (bpf,) = p.bpf_tables
    (nf,) = p.netfilter_tables
    assert [c.name for c in bpf.chains] == ["INPUT", "FORWARD", "common", "orphan"]
    nf_chains = {c.name: c for c in nf.chains}
    # INPUT: whole in netfilter too (handed-off packets meet all of it)
    assert len(nf_chains["INPUT"].rules) == 3 and nf_chains["INPUT"].policy == "DROP"
    assert nf_chains["FORWARD"].rules == () and nf_chains["FORWARD"].policy == "ACCEPT"
    assert len(nf_chains["OUTPUT"].rules) == 1
    r = rows(p)
    assert r[("INPUT", 3)][0] == "netfilter" and "handed to netfilter" in r[("INPUT", 3)][1]
    assert r[("INPUT", 1)][0] == "bpf" and "hands packets" in r[("INPUT", 1)][1]
    assert r[("FORWARD", 1)][0] == "bpf"
    assert r[("common", 1)][0] == "bpf"
    assert r[("OUTPUT", 1)][0] == "netfilter" and "REJECT" in r[("OUTPUT", 1)][1]
    assert r[("orphan", 1)][0] == "unreachable"
    assert p.share() == (5, 7)


def test_all_compilable_table_is_bpf_only() -> None:
    p = plan(RULES.replace("-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n", ""))
    assert p.netfilter_tables == () and len(p.bpf_tables) == 1
    assert p.share() == (5, 5)


def test_nf_only_matches_keep_xdp_off() -> None:
    text = RULES.replace("-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n", "")
    p = plan(text, "xdp")
    assert p.flavor == "nf"
    assert all("nf instead of xdp" in r.reason for r in p.rules if r.placement == "bpf")
    stateless = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    assert plan(stateless, "xdp").flavor == "xdp"


def test_earlier_tables_keep_xdp_off() -> None:
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination "
            "10.0.0.1\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n")
    p = plan(text, "tc")
    assert p.flavor == "nf"
    assert {t.name for t in p.netfilter_tables} == {"nat"}
