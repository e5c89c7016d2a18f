"""Chain walk semantics through BPF_PROG_TEST_RUN on every flavor: user chains, RETURN,
goto (RETURN past the caller), count-only rules, policies — verdicts and counters."""

from __future__ import annotations

import pytest

from tests.kernel._matchers_lab import (
    FLAVORS,
    Lab,
    lab,  # noqa: F401  (fixture)
    ruleset,
    run,
    tot_len,
    udp,
)

pytestmark = pytest.mark.kernel

PKT = udp()
N = tot_len(PKT)
ONE = (1, N)
ZERO = (0, 0)

# (id, rules, user chains, INPUT policy, verdict, counters that must be ONE, must be ZERO)
CASES = [
    ("jump-drop", "-A INPUT -j web\n-A web -p udp -j DROP", ["web"], "ACCEPT", "DROP",
     [("INPUT", 1), ("web", 1)], [("INPUT", None)]),
    ("jump-return-continues", "-A INPUT -j web\n-A INPUT -j DROP\n-A web -j RETURN\n"
     "-A web -j ACCEPT", ["web"], "ACCEPT", "DROP",
     [("INPUT", 1), ("web", 1), ("INPUT", 2)], [("web", 2), ("INPUT", None)]),
    ("jump-fall-off-continues", "-A INPUT -j web\n-A INPUT -j DROP\n-A web -p tcp -j ACCEPT",
     ["web"], "ACCEPT", "DROP", [("INPUT", 1), ("INPUT", 2)], [("web", 1)]),
    ("goto-return-skips-caller", "-A INPUT -g web\n-A INPUT -j DROP\n-A web -j RETURN",
     ["web"], "ACCEPT", "ACCEPT", [("INPUT", 1), ("web", 1), ("INPUT", None)],
     [("INPUT", 2)]),
    ("goto-fall-off-policy", "-A INPUT -g web\n-A INPUT -j ACCEPT", ["web"], "DROP", "DROP",
     [("INPUT", 1), ("INPUT", None)], [("INPUT", 2)]),
    ("nested-goto-returns-to-jumper", "-A INPUT -j a\n-A INPUT -j DROP\n-A a -g b\n"
     "-A a -j ACCEPT\n-A b -j RETURN", ["a", "b"], "ACCEPT", "DROP",
     [("INPUT", 1), ("a", 1), ("b", 1), ("INPUT", 2)], [("a", 2)]),
    ("count-only-rule", "-A INPUT -p udp\n-A INPUT -j DROP", [], "ACCEPT", "DROP",
     [("INPUT", 1), ("INPUT", 2)], [("INPUT", None)]),
    ("policy-drop", "-A INPUT -p tcp -j ACCEPT", [], "DROP", "DROP", [("INPUT", None)],
     [("INPUT", 1)]),
    ("return-in-builtin-policy", "-A INPUT -j RETURN\n-A INPUT -j ACCEPT", [], "DROP", "DROP",
     [("INPUT", 1), ("INPUT", None)], [("INPUT", 2)]),
    ("chain-called-twice", "-A INPUT -p tcp -j web\n-A INPUT -j web\n-A web -j DROP",
     ["web"], "ACCEPT", "DROP", [("INPUT", 2), ("web", 1)], [("INPUT", 1)]),
    ("first-match-wins", "-A INPUT -p udp -j ACCEPT\n-A INPUT -j DROP", [], "DROP", "ACCEPT",
     [("INPUT", 1)], [("INPUT", 2), ("INPUT", None)]),
]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_chain_walk(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    _, rules, chains, policy, verdict, hit, missed = case
    text = ruleset(rules, {"INPUT": policy}, "".join(f":{c} - [0:0]\n" for c in chains))
    verdicts, counters = run(lab, flavor, text, [("INPUT", PKT)])
    assert verdicts == [verdict]
    assert {k: counters[k] for k in hit} == dict.fromkeys(hit, ONE)
    assert {k: counters[k] for k in missed} == dict.fromkeys(missed, ZERO)

