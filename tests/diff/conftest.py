"""Session-wide twins for the differential suite, sized by environment variables.

BPFILTER_DIFF_RULESETS (default 20) rulesets x BPFILTER_DIFF_PACKETS (default
2000) frames, seeds from BPFILTER_DIFF_SEED (default 0); the issue's target is
>= 20 x 2000 on each of xdp, tc, nf.  The reference lab (iptables-legacy) is
built once and its outcomes cached per seed, so each hook costs one candidate
run per ruleset.  Throughput is printed in the terminal summary.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_netns
from tests.diff.harness import BASELINE_RULESETS, SEEDS, SEEDS6, STATS, Reference


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    if not STATS.frames:
        return
    tr = terminalreporter
    tr.section("differential throughput")
    for who, frames in sorted(STATS.frames.items()):
        secs = STATS.seconds[who]
        tr.write_line(f"{who}: {frames} frames in {secs:.1f}s "
                      f"({frames / secs if secs else 0:.0f} frames/s incl. loading rulesets)")
    if STATS.rules_hit:
        hit = sum(h for h, _ in STATS.rules_hit)
        total = sum(t for _, t in STATS.rules_hit)
        tr.write_line(f"reference rules hit by at least one packet: {hit}/{total}")


def _reference(family: int) -> Iterator[Reference]:
    require_netns()
    from bpfilter.verify.differential import IptablesLegacy, Twin
    from bpfilter.verify.netns import Topology

    with Topology(f"ref{family}") as topo:
        yield Reference(Twin.create(topo, IptablesLegacy(family)), family)


@pytest.fixture(scope="session")
def reference() -> Iterator[Reference]:
    yield from _reference(4)


@pytest.fixture(scope="session")
def reference6() -> Iterator[Reference]:
    yield from _reference(6)


@pytest.fixture(scope="session")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """hook name → candidate Twin, built on first use and torn down at session end."""
    from bpfilter.verify.netns import Topology

    made: dict[str, object] = {}
    topos: list[Topology] = []
    backends: list[object] = []

    def get(name: str, make_backend) -> object:  # noqa: ANN001
        from bpfilter.verify.differential import Twin

        if name not in made:
            topo = Topology(f"c{name}")
            topos.append(topo)
            backend = make_backend(tmp_path_factory.mktemp(f"run-{name}"))
            backends.append(backend)
            made[name] = Twin.create(topo, backend)
        return made[name]

    try:
        yield get  # type: ignore[misc]
    finally:
        for topo in topos:  # namespaces first: links die with their devices
            topo.close()
        for backend in backends:
            backend.close()


def seed_ids() -> list[str]:
    return [f"seed{s}" for s in SEEDS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "diff_seed" in metafunc.fixturenames:
        metafunc.parametrize("diff_seed", SEEDS, ids=seed_ids())
    if "diff6_seed" in metafunc.fixturenames:
        metafunc.parametrize("diff6_seed", SEEDS6, ids=[f"seed{s}" for s in SEEDS6])
    if "baseline_seed" in metafunc.fixturenames:
        seeds = SEEDS[:BASELINE_RULESETS]
        metafunc.parametrize("baseline_seed", seeds, ids=[f"seed{s}" for s in seeds])

