"""The per-packet hand-off (backend/handoff.py) on a real router: what BPF decides never
meets netfilter's copy of the chain, what it hands off meets the whole chain.

Checked with packets and both sets of counters: bpfilter's (`bpfilter save -c`) and
netfilter's (`iptables-legacy-save -c` of the copy, whose first rule is the checker).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from tests.conftest import require_netns
from tests.diff.stateful_lab import DUT_CLI, StatefulTwin

pytestmark = pytest.mark.kernel

RULES = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 8443 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
-A INPUT -p udp -m udp --dport 53 -m limit --limit 1/hour --limit-burst 2 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j DROP
COMMIT
"""


@pytest.fixture
def lab(tmp_path) -> Iterator[tuple[StatefulTwin, object]]:  # noqa: ANN001
    require_netns()
    from bpfilter.verify.differential import BpfilterPipeline

    os.environ.setdefault("BPFILTER_IPTABLES_RESTORE", "iptables-legacy-restore")
    os.environ.setdefault("BPFILTER_IPTABLES_SAVE", "iptables-legacy-save")
    twin = StatefulTwin.create("hoff")
    backend = BpfilterPipeline("nf", tmp_path / "run")
    try:
        yield twin, backend
    finally:
        from tests.diff.test_stateful import _flush_bpfilter

        twin.topo.fork("dut", _flush_bpfilter, str(backend.run_dir))
        backend.close()
        twin.close()


def _nf_counters(twin: StatefulTwin) -> dict[str, int]:
    """Packets per netfilter INPUT rule, keyed by a short label."""
    out = twin.topo.exec("dut", ["iptables-legacy-save", "-c", "-t", "filter"]).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"^\[(\d+):\d+\] -A INPUT (.*)$", line)
        if m:
            rest = m.group(2)
            label = ("checker" if "-m bpf" in rest else
                     re.search(r"(dport \d+|ctstate \S+)", rest).group(1))  # type: ignore[union-attr]
            counts[label] = int(m.group(1))
    return counts


def test_reject_and_limit_run_in_netfilter_accept_and_drop_in_bpf(lab) -> None:  # noqa: ANN001
    twin, backend = lab
    backend.load(twin.lab, RULES)
    flows = [["tcp", DUT_CLI, 8443, 1, "fin"],   # REJECT with RST → refused (netfilter)
             ["tcp", DUT_CLI, 80, 12, "fin"],    # ACCEPT by BPF, then ESTABLISHED in BPF
             ["tcp", DUT_CLI, 22, 1, "fin"],     # DROP by BPF
             ["udp", DUT_CLI, 53], ["udp", DUT_CLI, 53], ["udp", DUT_CLI, 53]]  # limit: 2
    assert twin.run(flows) == ["refused", "ok:12", "timeout", "reply:4", "reply:4", "none"]
    nf = _nf_counters(twin)
    # Netfilter's copy of INPUT sees every packet BPF did not drop: the checker accepts
    # those BPF accepted (the port-80 connection: SYN, ACK, data, FIN, ...) so none of
    # them meets a rule behind it; only the handed-off ones do: the SYN to 8443 and the
    # three DNS queries (the limit rule runs once per packet, in netfilter only).
    assert nf["checker"] >= 3
    assert nf["ctstate RELATED,ESTABLISHED"] == 0
    assert nf["dport 8443"] == 1
    assert nf["dport 53"] == 2  # the third query is over the limit: policy DROP
    assert nf["dport 80"] == 0 and nf["dport 22"] == 0
    # bpfilter's own counters: what BPF decided (rules it hands off count nothing there)
    saved = backend.counters(twin.lab) or ""
    bpf = {m.group(2): int(m.group(1)) for m in
           re.finditer(r"^\[(\d+):\d+\] -A INPUT .*?(dport \d+|ctstate \S+)", saved, re.M)}
    assert bpf["dport 80"] == 1 and bpf["dport 22"] == 1
    assert bpf["dport 8443"] == 0 and bpf["dport 53"] == 0
    assert bpf["ctstate RELATED,ESTABLISHED"] >= 2
