"""bpfilter6-restore must treat every IPv6 packet exactly as ip6tables-legacy does.

Seeded random ip6tables rulesets and packets with extension header chains, real
fragments, truncated headers, link-local sources and neighbor solicitations, half of
them built to satisfy (or just miss) one rule each (bpfilter.verify.rulegen6); the
same frames go to a router running ip6tables-legacy and to its twin running bpfilter6
on each hook; every frame's fate must agree.
Sizes: BPFILTER_DIFF6_RULESETS (default 6) x BPFILTER_DIFF6_PACKETS (default 300),
seeds from BPFILTER_DIFF6_SEED (default 0). Replay one: BPFILTER_DIFF6_SEED=<seed>
BPFILTER_DIFF6_RULESETS=1.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import require_netns

pytestmark = [pytest.mark.kernel, pytest.mark.diff]

RULESETS = int(os.environ.get("BPFILTER_DIFF6_RULESETS", "6"))
PACKETS = int(os.environ.get("BPFILTER_DIFF6_PACKETS", "300"))
FIRST_SEED = int(os.environ.get("BPFILTER_DIFF6_SEED", "0"))
SEEDS = list(range(FIRST_SEED, FIRST_SEED + RULESETS))
HOOKS = ("nf", "xdp", "tc")


@functools.cache
def case(seed: int) -> tuple[str, list]:
    from bpfilter.verify.rulegen6 import aimed_packets6, packets6, ruleset6

    text = ruleset6(seed).text
    base = seed * 100_000
    return text, (packets6(seed, PACKETS // 2, first_tag=base + 1)
                  + aimed_packets6(text, seed, PACKETS - PACKETS // 2, first_tag=base + 50_000))


class Reference:
    """The ip6tables-legacy lab, with its outcomes cached per seed."""

    def __init__(self, lab: object) -> None:
        self.lab = lab
        self.loaded: str | None = None
        self._outcomes: dict[int, dict[int, str]] = {}

    def outcomes(self, seed: int) -> dict[int, str]:
        from bpfilter.verify.diff6 import Ip6tablesLegacy, run6

        if seed not in self._outcomes:
            text, packets = case(seed)
            self.load(Ip6tablesLegacy(), text)
            self._outcomes[seed] = run6(self.lab, packets)  # type: ignore[arg-type]
        return self._outcomes[seed]

    def load(self, backend: object, text: str) -> None:
        if self.loaded != text:
            backend.load(self.lab, text)  # type: ignore[attr-defined]
            self.loaded = text


@pytest.fixture(scope="module")
def reference6() -> Iterator[Reference]:
    require_netns()
    from bpfilter.verify.netns import Topology
    from bpfilter.verify.router import build_router_lab

    with Topology("r6") as topo:
        yield Reference(build_router_lab(topo))


@pytest.fixture(scope="module")
def candidate6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple]]:
    """hook → (lab, backend), built on first use, torn down at module end."""
    from bpfilter.verify.diff6 import Bpfilter6, Ip6tablesLegacy
    from bpfilter.verify.netns import Topology
    from bpfilter.verify.router import build_router_lab

    made: dict[str, tuple] = {}
    topos: list[Topology] = []

    def get(hook: str) -> tuple:
        if hook not in made:
            topo = Topology(f"c6{hook}")
            topos.append(topo)
            backend = Ip6tablesLegacy() if hook == "baseline" else \
                Bpfilter6(hook, tmp_path_factory.mktemp(f"run6-{hook}"))
            made[hook] = (build_router_lab(topo), backend)
        return made[hook]

    try:
        yield get
    finally:
        for topo in topos:
            topo.close()
        for _, backend in made.values():
            backend.close()


def _check(reference6: Reference, candidate6: Callable[[str], tuple], hook: str,
           seed: int) -> None:
    from bpfilter.verify.diff6 import compare6

    text, packets = case(seed)
    ref = reference6.outcomes(seed)
    lab, backend = candidate6(hook)
    backend.load(lab, text)
    result = compare6(seed, text, packets, reference6.lab, ref, lab)  # type: ignore[arg-type]
    if result.mismatches:
        pytest.fail(result.report(), pytrace=False)


def test_lab_delivers_ipv6(reference6) -> None:
    """With no rules, most generated packets arrive (input or forward): the lab and the
    capture work, so "lost" on both sides means something."""
    from bpfilter.verify.diff6 import Ip6tablesLegacy, run6

    _, packets = case(SEEDS[0])
    reference6.load(Ip6tablesLegacy(), "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                    ":OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    got = run6(reference6.lab, packets)
    arrived = sum(1 for v in got.values() if v != "lost")
    assert arrived > len(packets) // 2, f"only {arrived} of {len(packets)} arrived"


@pytest.mark.parametrize("seed", SEEDS[:1], ids=lambda s: f"seed{s}")
def test_harness_baseline_ip6tables_in_both_twins(reference6, candidate6, seed: int) -> None:
    _check(reference6, candidate6, "baseline", seed)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("hook", HOOKS)
def test_bpfilter6_matches_ip6tables(reference6, candidate6, hook: str, seed: int) -> None:
    _check(reference6, candidate6, hook, seed)
