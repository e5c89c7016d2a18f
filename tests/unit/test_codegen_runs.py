"""runs.py: which rules become one binary search (pure)."""

from __future__ import annotations

from bpfilter.backend.runs import ExactRun, plan_steps
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Chain, Family


def chain(rules: list[str]) -> Chain:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":x - [0:0]\n" + "".join(f"-A INPUT {r}\n" for r in rules) + "COMMIT\n")
    t = parse_restore(text, family=Family.IPV4).table("filter")
    assert t is not None
    c = t.chain("INPUT")
    assert c is not None
    return c


def test_blocklist_becomes_one_run_with_first_occurrence() -> None:
    rules = [f"-s 10.0.0.{i % 5}/32 -j DROP" for i in range(10)]
    steps = plan_steps(chain(["-p udp -j ACCEPT", *rules, "-j ACCEPT"]))
    assert steps[0] == 1 and steps[2] == 12
    run = steps[1]
    assert isinstance(run, ExactRun)
    assert (run.field, run.first, run.length) == ("src", 2, 10)
    assert run.leaves == tuple((0x0A000000 + k, 2 + k) for k in range(5))


def test_port_run_keeps_other_options_in_template() -> None:
    rules = [f"-s 10.0.0.0/8 -p tcp --sport 1024 --dport {p} -j ACCEPT" for p in range(1, 9)]
    (run,) = plan_steps(chain(rules))
    assert isinstance(run, ExactRun) and run.field == "dport" and run.length == 8
    (m,) = run.template.matches
    assert m.module == "tcp" and [o.name for o in m.options] == ["sport"]
    assert run.template.src is not None


def test_what_stays_linear() -> None:
    cases = [
        [f"-s 10.0.0.{i}/32 -j DROP" for i in range(7)],  # too short
        [f"-s 10.0.0.{i}/31 -j DROP" for i in range(0, 20, 2)],  # not exact
        [f"! -s 10.0.0.{i}/32 -j DROP" for i in range(10)],  # negated
        [f"-s 10.0.0.{i}/32 -j x" for i in range(10)],  # not terminal
        [f"-s 10.0.0.{i}/32" for i in range(10)],  # count only
        [f"-p tcp ! --dport {i} -j DROP" for i in range(1, 11)],  # negated port
        [f"-p tcp --dport {i}:{i + 1} -j DROP" for i in range(1, 11)],  # range
        [f"-s 10.0.0.{i}/32 -j {'DROP' if i % 2 else 'ACCEPT'}" for i in range(10)],
    ]
    for rules in cases:
        assert plan_steps(chain(rules)) == list(range(1, len(rules) + 1)), rules


def test_run_breaks_where_the_rest_differs() -> None:
    rules = [f"-s 10.0.0.{i}/32 -p tcp -j DROP" for i in range(9)]
    rules += [f"-s 10.0.1.{i}/32 -p udp -j DROP" for i in range(9)]
    steps = plan_steps(chain(rules))
    assert [(s.first, s.length) for s in steps if isinstance(s, ExactRun)] == [(1, 9), (10, 9)]
