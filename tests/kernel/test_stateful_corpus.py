"""Every IPv4 ruleset of ../shared/corpus/real that iptables-legacy accepts loads with
bpfilter (nf hook, the planner's choice): compiled, verified, attached, the rest in
netfilter (hand-off copies and other tables), in a fresh namespace each, then flushed.

The ipsets a file names are created first (hash:net), as the corpus README asks.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_netns

pytestmark = pytest.mark.kernel

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "real"
FILES = sorted(p.name for p in CORPUS.glob("*.v4.rules") if not p.name.startswith("NEG")) \
    if CORPUS.is_dir() else []


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[tuple[object, Path]]:
    require_netns()
    from bpfilter.verify.netns import Topology

    run = tmp_path / "run"
    (run / "bpffs").mkdir(parents=True)
    subprocess.run(["mount", "-t", "bpf", "bpf", str(run / "bpffs")], check=True)
    topo = Topology("corpus")
    try:
        topo.netns("dut")
        yield topo, run
    finally:
        topo.close()
        subprocess.run(["umount", "-l", str(run / "bpffs")], check=False)


def _sets(text: str) -> set[str]:
    return set(re.findall(r"--match-set (\S+)", text))


def _restore(text: str, run_dir: str) -> tuple[int, int]:
    from bpfilter.pipeline import RestoreRequest, restore

    os.environ["BPFILTER_RUN_DIR"] = run_dir
    result = restore(RestoreRequest(text, filename="corpus"))
    assert result.plan is not None
    return result.plan.share()


def _flush(run_dir: str) -> int:
    from bpfilter.ir import Family
    from bpfilter.pipeline import flush

    os.environ["BPFILTER_RUN_DIR"] = run_dir
    return flush(Family.IPV4)


@pytest.mark.skipif(not FILES, reason=f"no corpus at {CORPUS}")
@pytest.mark.parametrize("name", FILES)
def test_corpus_ruleset_loads(netns, name: str) -> None:  # noqa: ANN001
    topo, run = netns
    text = (CORPUS / name).read_text()
    for s in sorted(_sets(text)):
        topo.exec("dut", ["ipset", "create", s, "hash:net"])
    ref = topo.exec("dut", ["iptables-legacy-restore", "--test"], input=text, check=False)
    if ref.returncode != 0:
        pytest.skip(f"iptables-legacy refuses it here: {ref.stderr.strip()[:200]}")
    os.environ.setdefault("BPFILTER_IPTABLES_RESTORE", "iptables-legacy-restore")
    os.environ.setdefault("BPFILTER_IPTABLES_SAVE", "iptables-legacy-save")
    in_bpf, total = topo.fork("dut", _restore, text, str(run))
    assert in_bpf <= total
    topo.fork("dut", _flush, str(run))
    left = topo.exec("dut", ["iptables-legacy-save", "-t", "filter"]).stdout
    assert "-A " not in left  # flush took back what bpfilter put into netfilter
