"""Large rulesets where the tree lookups kick in, against iptables-legacy.

Each seed's random ruleset (verify.rulegen: negations, interfaces, user chains, odd
masks...) gets a long block of 5-tuple rules in front of its INPUT rules and after its
FORWARD rules, built around the same anchors the packet generator aims at, so packets
land on, next to and between those rules. bpfilter compiles each block into a tree
lookup (checked below); every frame's fate must equal iptables-legacy's.
"""

from __future__ import annotations

import random
import time

import pytest

from bpfilter.backend import compile_table
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.verify.differential import HOOKS, BpfilterCli, compare
from bpfilter.verify.packetgen import PacketGenerator
from bpfilter.verify.rulegen import GenRule, GenRuleset, Neg, generate_ruleset, prefix_mask
from tests.diff.harness import PACKETS, STATS, env_int

pytestmark = [pytest.mark.kernel, pytest.mark.diff]

LOOKUP_SEEDS = [900 + i for i in range(env_int("BPFILTER_LOOKUP_DIFF_RULESETS", 2))]
INPUT_RULES = env_int("BPFILTER_LOOKUP_DIFF_INPUT", 1200)
FORWARD_RULES = env_int("BPFILTER_LOOKUP_DIFF_FORWARD", 600)
FIRST_TAG = 50_000_000  # far from the tags of tests/diff/test_differential.py
_REF: dict[int, dict[int, str]] = {}  # reference outcomes per seed (compare reloads on need)


def _block(rng: random.Random, chain: str, n: int, anchors: dict[str, list[int]],
           dst_keys: tuple[str, ...]) -> list[GenRule]:
    out = []
    for _ in range(n):
        splen = rng.choice((32, 32, 32, 28, 24, 24, 20, 16))
        dplen = rng.choice((32, 32, 30, 28, 24, 16))
        src = rng.choice(anchors["src"]) ^ rng.getrandbits(12)
        dst = rng.choice(anchors[rng.choice(dst_keys)]) ^ rng.getrandbits(8)
        smask, dmask = prefix_mask(splen), prefix_mask(dplen)
        proto = rng.choice((6, 6, 17, 17, 0))
        sport = dport = None
        if proto and rng.random() < 0.8:
            p = rng.choice(anchors["port"])
            dport = Neg((p, p)) if rng.random() < 0.6 else Neg((p, min(65535, p + 100)))
            if rng.random() < 0.15:
                sport = Neg((1024, 65535))
        out.append(GenRule(chain, src=Neg((src & smask, smask)), dst=Neg((dst & dmask, dmask)),
                           proto=Neg(proto) if proto else None, sport=sport, dport=dport,
                           target=rng.choice(("ACCEPT", "DROP"))))
    return out


def big_ruleset(seed: int) -> GenRuleset:
    base = generate_ruleset(seed)
    rng = random.Random(seed)
    rules = (_block(rng, "INPUT", INPUT_RULES, base.anchors, ("local",)) + base.rules
             + _block(rng, "FORWARD", FORWARD_RULES, base.anchors, ("fwd0", "fwd1")))
    return GenRuleset(seed, base.policies, base.user_chains, rules, base.anchors)


def test_blocks_become_lookups() -> None:
    table = parse_restore(big_ruleset(LOOKUP_SEEDS[0]).text(),
                          family=Family.IPV4).table("filter")
    assert table is not None
    progs = compile_table(table, Family.IPV4, "nf")
    maps = {c.name for p in progs for c in p.map_contents}
    assert len(maps) >= 4, maps  # nodes + rules for INPUT's block and FORWARD's block


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("seed", LOOKUP_SEEDS)
def test_lookups_match_iptables(reference, candidates, hook: str, seed: int) -> None:
    from tests.diff.test_differential import require_bpfilter_cli

    require_bpfilter_cli()
    ruleset = big_ruleset(seed)
    k = LOOKUP_SEEDS.index(seed)
    specs = PacketGenerator(ruleset, seed).generate(
        PACKETS, first_tag=FIRST_TAG + k * 4 * PACKETS, first_ident=FIRST_TAG + k * 4 * PACKETS)
    text = ruleset.text()
    if seed not in _REF:
        reference.twin.load(text)
        _REF[seed] = reference.twin.run(specs)
    ref = _REF[seed]
    twin = candidates(f"cli-{hook}", lambda run_dir: BpfilterCli(hook, run_dir))
    start = time.monotonic()
    result = compare(seed, text, specs, reference.twin, twin, ref_outcomes=ref)
    STATS.add(f"bpfilter --hook {hook} (lookup rulesets)", result.frames,
              time.monotonic() - start)
    if result.mismatches:
        pytest.fail(result.report(), pytrace=False)
