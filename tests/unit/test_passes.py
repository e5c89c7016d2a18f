"""Classifier passes (pure): rules as boxes, decision-tree forests, runs, emit steps.

The reference everywhere is the linear first-match walk the trees replace.
"""

from __future__ import annotations

import random

import pytest

from bench.rulesets import blocklist, classbench, first_match, restore_text
from bpfilter.backend.lookup import RULE, find_runs, plan_lookups, steps_with_lookups
from bpfilter.backend.runs import ExactRun, plan_steps
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Table
from bpfilter.passes.dtree import build_forest
from bpfilter.passes.fivetuple import (
    ACCEPT,
    DROP,
    FULL_HI,
    FULL_LO,
    HOTDROP,
    PORT_NONE,
    Box,
    packet_point,
    rule_boxes,
)
from bpfilter.passes.shadow import remove_shadowed


def table_of(text: str) -> Table:
    t = parse_restore(text, family=Family.IPV4).table("filter")
    assert t is not None
    return t


def rules_of(lines: list[str]) -> tuple:
    head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    return table_of(head + "".join(x + "\n" for x in lines) + "COMMIT\n").chain("INPUT").rules


def linear(boxes: list[Box], point: tuple[int, ...]) -> Box | None:
    for b in boxes:
        if all(lo <= v <= hi for lo, v, hi in zip(b.lo, point, b.hi, strict=True)):
            return b
    return None


def boxes_of(rules: tuple) -> list[Box]:
    (run,) = find_runs(rules, 1)
    return run[2]


def test_port_rule_is_two_boxes_with_hotdrop_half() -> None:
    (r,) = rules_of(["-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 80:90 -j DROP"])
    ok, short = rule_boxes(r, 0)
    assert ok.lo == (10 << 24, 0, 6, 0, 80, 1) and ok.hi == ((11 << 24) - 1, 0xFFFFFFFF, 6,
                                                              0xFFFF, 90, 1)
    assert ok.action == DROP
    assert short.action == HOTDROP and short.lo[5] == short.hi[5] == 0
    assert short.hi[3] == short.hi[4] == PORT_NONE


def test_plain_rule_is_one_box_any_port() -> None:
    (r,) = rules_of(["-A INPUT -d 1.2.3.4/32 -p udp -j ACCEPT"])
    (b,) = rule_boxes(r, 3)
    assert b.rule == 3 and b.action == ACCEPT
    assert b.lo[3:] == (0, 0, 0) and b.hi[3:] == (PORT_NONE, PORT_NONE, 1)


@pytest.mark.parametrize("line", [
    "-A INPUT ! -s 10.0.0.0/8 -j DROP",
    "-A INPUT -s 10.0.0.0/255.0.255.0 -j DROP",
    "-A INPUT -i eth0 -j DROP",
    "-A INPUT -f -j DROP",
    "-A INPUT ! -p tcp -j DROP",
    "-A INPUT -p tcp -m tcp ! --dport 80 -j DROP",
    "-A INPUT -p tcp -m tcp --syn -j DROP",
    "-A INPUT -p tcp -j RETURN",
    "-A INPUT -j LOG",
    "-A INPUT -p tcp",
])
def test_not_an_interval_rule(line: str) -> None:
    (r,) = rules_of([line])
    assert rule_boxes(r, 0) is None


def test_packet_point_edge_cases() -> None:
    assert packet_point(1, 2, 6, 10, 80, 20, 0) == (1, 2, 6, 10, 80, 1)
    assert packet_point(1, 2, 6, 10, 80, 19, 0)[3:] == (PORT_NONE, PORT_NONE, 0)  # short
    assert packet_point(1, 2, 6, 10, 80, 40, 1)[5] == 0  # tcp fragment at offset 1: hotdrop
    assert packet_point(1, 2, 17, 10, 80, 40, 1)[3:] == (PORT_NONE, PORT_NONE, 1)
    assert packet_point(1, 2, 1, 10, 80, 8, 0)[3:] == (PORT_NONE, PORT_NONE, 1)


def test_boxes_agree_with_independent_reference() -> None:
    """Boxes of generated rules give the same first match as bench's own semantics."""
    gen = classbench(400, seed=5)
    boxes = boxes_of(rules_of([r.line() for r in gen]))
    rng = random.Random(5)
    for _ in range(500):
        r = rng.choice(gen)
        src = r.src[0] | rng.getrandbits(32 - r.src[1]) if r.src[1] < 32 else r.src[0]
        dst = r.dst[0] | rng.getrandbits(32 - r.dst[1]) if r.dst[1] < 32 else r.dst[0]
        proto = r.proto or rng.choice([6, 17, 1])
        sp, dp = rng.randrange(65536), rng.randrange(65536)
        want = first_match(gen, (src, dst, proto, sp, dp))
        got = linear(boxes, packet_point(src, dst, proto, sp, dp, 40, 0))
        assert (got.rule if got else None) == want


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("gen", [classbench, blocklist])
def test_forest_is_first_match(gen, seed: int) -> None:
    boxes = boxes_of(rules_of([r.line() for r in gen(600, seed=seed)]))
    forest = build_forest(boxes)
    rng = random.Random(seed)
    for _ in range(400):
        b = rng.choice(boxes)  # a point inside some rule, and a random point
        for point in (tuple(rng.randint(lo, hi) for lo, hi in zip(b.lo, b.hi, strict=True)),
                      tuple(rng.randint(lo, hi) for lo, hi in zip(FULL_LO, FULL_HI,
                                                                  strict=True))):
            assert forest.classify(point) == linear(boxes, point)


def test_covered_rules_vanish() -> None:
    lines = ["-A INPUT -s 10.0.0.0/24 -j DROP"] + [f"-A INPUT -s 10.0.0.{i}/32 -j ACCEPT"
                                                   for i in range(50)]
    forest = build_forest(remove_shadowed(boxes_of(rules_of(lines))))
    assert [len(forest.entries), forest.depth] == [2, 1]  # one per l4ok tree
    # without the pass the trees still answer the covering rule everywhere it matches
    forest = build_forest(boxes_of(rules_of(lines)))
    assert all(forest.classify((10 << 24 | i, 1, 6, 1, 1, 1)).rule == 0 for i in range(256))


def test_shadowed_rules_are_removed_exactly() -> None:
    lines = ["-A INPUT -s 10.0.0.0/8 -p tcp -j DROP",
             "-A INPUT -s 10.1.0.0/16 -p tcp -m tcp --dport 80 -j ACCEPT",  # shadowed
             "-A INPUT -s 10.1.0.0/16 -p udp -m udp --dport 80 -j ACCEPT",  # not: udp
             "-A INPUT -d 1.2.3.0/24 -j ACCEPT",
             "-A INPUT -s 11.0.0.1/32 -d 1.2.3.4/32 -p udp -j DROP",  # shadowed by rule 4
             "-A INPUT -s 11.0.0.1/32 -d 1.2.4.4/32 -p udp -j DROP"]
    boxes = boxes_of(rules_of(lines))
    kept = remove_shadowed(boxes)
    assert sorted({b.rule for b in kept}) == [0, 2, 3, 5]
    rng = random.Random(1)
    for _ in range(3000):
        b = rng.choice(boxes)
        p = tuple(rng.randint(lo, hi) for lo, hi in zip(b.lo, b.hi, strict=True))
        assert linear(kept, p) == linear(boxes, p)


def test_shadow_removal_keeps_first_match_on_generated_rules() -> None:
    boxes = boxes_of(rules_of([r.line() for r in classbench(800, seed=9)]))
    kept = remove_shadowed(boxes)
    assert len(kept) < len(boxes)
    rng = random.Random(9)
    for _ in range(1500):
        b = rng.choice(boxes)
        p = tuple(rng.randint(lo, hi) for lo, hi in zip(b.lo, b.hi, strict=True))
        assert linear(kept, p) == linear(boxes, p)


def test_runs_stop_at_other_rules() -> None:
    lines = ([f"-A INPUT -s 10.0.0.{i}/32 -j DROP" for i in range(20)]
             + ["-A INPUT -i eth0 -j ACCEPT"]
             + [f"-A INPUT -p udp -m udp --dport {i} -j ACCEPT" for i in range(1, 6)]
             + ["-A INPUT -j LOG"]
             + [f"-A INPUT -d 10.1.0.{i}/32 -j DROP" for i in range(30)])
    runs = find_runs(rules_of(lines), 16)
    assert [(a, b) for a, b, _ in runs] == [(1, 20), (28, 57)]


def test_lookup_contents_layout() -> None:
    text = restore_text(classbench(100, seed=2))
    table = table_of(text)
    lks = plan_lookups(table, lambda chain, n: 1000 + n, 16)
    (lk,) = lks.values()
    nodes, rules = lk.contents()
    # all nodes are one array element; the rules map has one element per leaf entry
    assert nodes.count == 1 and nodes.value_size == 16 * len(lk.tree.nodes)
    assert rules.count == len(lk.tree.entries)
    # every rule entry carries the counter slot of its rule
    for i, e in enumerate(lk.tree.entries):
        vals = RULE.unpack_from(rules.values, i * RULE.size)
        assert vals[13] == 1000 + lk.tree.boxes[e].rule + lk.first


def test_steps_with_lookups_keeps_exact_runs_outside() -> None:
    lines = ([f"-A INPUT -i eth0 -s 10.0.0.{i}/32 -j DROP" for i in range(10)]
             + [f"-A INPUT -s 10.9.0.{i}/24 -p tcp -m tcp --dport {i} -j ACCEPT"
                for i in range(1, 40)]
             + [f"-A INPUT -i eth1 -s 10.0.1.{i}/32 -j DROP" for i in range(10)])
    head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    table = table_of(head + "".join(x + "\n" for x in lines) + "COMMIT\n")
    chain = table.chain("INPUT")
    lks = plan_lookups(table, lambda c, n: n, 16)
    steps = steps_with_lookups(chain, lks, 8)
    runs = [s for s in steps if isinstance(s, ExactRun)]
    assert [(r.first, r.length) for r in runs] == [(1, 10), (50, 10)]
    assert runs[1].leaves[0][1] >= 50
    assert [s for s in steps if not isinstance(s, ExactRun | int)] == list(lks.values())
    # without lookups: exactly runs.plan_steps
    assert steps_with_lookups(chain, {}, 8) == list(plan_steps(chain, 8))


class _FakeMap:
    class spec:  # noqa: N801 - mimics Map.spec
        max_entries = 10**6


@pytest.mark.parametrize("seed", [1, 2])
def test_in_place_replace_keeps_first_match(seed: int) -> None:
    from bpfilter.backend.lookup_update import LiveLookup

    gen = classbench(400, seed=seed)
    table = table_of(restore_text(gen))
    (lk,) = plan_lookups(table, lambda c, n: n, 16).values()
    live = LiveLookup(lk, _FakeMap(), _FakeMap())  # type: ignore[arg-type]
    rng = random.Random(seed)
    fresh = classbench(600, seed=seed + 100)[400:]
    done = 0
    for new in fresh[:60]:
        pos = rng.randrange(len(gen))
        (rule,) = rules_of([new.line()])
        patch = live.plan_replace(pos, rule)
        if patch is None:
            continue
        live.apply(pos, patch)
        gen[pos] = new
        done += 1
    assert done >= 20  # the rest need a recompile (see lookup_update.py)
    boxes = boxes_of(rules_of([r.line() for r in gen]))
    for _ in range(3000):
        b = rng.choice(boxes)
        p = tuple(rng.randint(lo, hi) for lo, hi in zip(b.lo, b.hi, strict=True))
        want, got = linear(boxes, p), live.classify(p)
        assert (want and (want.rule, want.action)) == (got and (got.rule, got.action))


def test_bench_cli_points_meet_the_rules() -> None:
    from bpfilter.bench_cli import sample_points

    gen = classbench(300, seed=4)
    table = table_of(restore_text(gen))
    pts = sample_points(table, 200)
    hits = sum(first_match(gen, p) is not None for p in pts[::2])
    assert len(pts) == 200 and hits >= 80  # the in-box half mostly meets a rule


def test_changes_in_place_only_for_rules_inside_lookups() -> None:
    from bpfilter.backend.lookup_update import changes_in_place

    gen = classbench(100, seed=3)
    old = table_of(restore_text(gen).replace("COMMIT", "-A INPUT -i eth0 -j DROP\nCOMMIT"))
    lks = plan_lookups(old, lambda c, n: n, 16)
    (lk,) = lks.values()
    changed = list(gen)
    changed[40] = classbench(101, seed=8)[100]
    new = table_of(restore_text(changed).replace("COMMIT", "-A INPUT -i eth0 -j DROP\nCOMMIT"))
    (got,) = changes_in_place(old, new, lks)
    assert got[0] is lk and got[1] == 40 - (lk.first - 1)
    assert changes_in_place(old, old, lks) == []
    other = table_of(restore_text(gen).replace("COMMIT", "-A INPUT -i eth1 -j DROP\nCOMMIT"))
    assert changes_in_place(old, other, lks) is None  # outside every lookup run
    shorter = table_of(restore_text(gen[:-1]).replace("COMMIT",
                                                       "-A INPUT -i eth0 -j DROP\nCOMMIT"))
    assert changes_in_place(old, shorter, lks) is None
