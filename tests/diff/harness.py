"""Shared state of the differential suite: sizes, per-seed cases, reference cache, stats.

A plain module (not the conftest) so tests and fixtures share one copy of it.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


RULESETS = env_int("BPFILTER_DIFF_RULESETS", 20)
PACKETS = env_int("BPFILTER_DIFF_PACKETS", 2000)
BASE_SEED = env_int("BPFILTER_DIFF_SEED", 0)
BASELINE_RULESETS = env_int("BPFILTER_DIFF_BASELINE_RULESETS", 3)
# (H11's tests/diff/test_ipv6_diff.py is the main IPv6 suite; this is the same harness as IPv4)
RULESETS6 = env_int("BPFILTER_DIFF_V6_RULESETS", 3)
SEEDS = [BASE_SEED + i for i in range(RULESETS)]
SEEDS6 = [BASE_SEED + i for i in range(RULESETS6)]


@dataclass
class DiffStats:
    """What the suite did, for the terminal summary (and to size CI)."""

    frames: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rules_hit: list[tuple[int, int]] = field(default_factory=list)

    def add(self, who: str, frames: int, seconds: float) -> None:
        self.frames[who] = self.frames.get(who, 0) + frames
        self.seconds[who] = self.seconds.get(who, 0.0) + seconds


STATS = DiffStats()


@functools.cache
def case(seed: int, family: int = 4):  # noqa: ANN201 - (GenRuleset, list[PacketSpec])
    """The ruleset and packets of one seed (tags/idents distinct across seeds)."""
    from bpfilter.verify.packetgen import PacketGenerator
    from bpfilter.verify.rulegen import generate_ruleset

    ruleset = generate_ruleset(seed, family=family)
    first = (seed - BASE_SEED) * 4 * PACKETS + 1
    specs = PacketGenerator(ruleset, seed).generate(PACKETS, first_tag=first,
                                                    first_ident=first)
    return ruleset, specs


class Reference:
    """The iptables-legacy (or ip6tables-legacy) twin and its cached outcomes per seed."""

    def __init__(self, twin, family: int = 4) -> None:  # noqa: ANN001
        self.twin = twin
        self.family = family
        self.outcomes: dict[int, dict[int, str]] = {}

    def outcomes_for(self, seed: int) -> dict[int, str]:
        if seed not in self.outcomes:
            ruleset, specs = case(seed, self.family)
            start = time.monotonic()
            self.twin.load(ruleset.text())
            self.outcomes[seed] = self.twin.run(specs)
            STATS.add(f"{self.twin.backend.name} (reference)",
                      sum(len(s.tags) for s in specs), time.monotonic() - start)
            save = self.twin.backend.counters(self.twin.lab) or ""
            rules = [ln for ln in save.splitlines() if ln.startswith("[")]
            STATS.rules_hit.append((sum(not ln.startswith("[0:") for ln in rules), len(rules)))
        return self.outcomes[seed]
