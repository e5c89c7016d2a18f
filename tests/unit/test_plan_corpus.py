"""`bpfilter plan` on the real corpus: the share of filter-table rules that run in BPF
(bench/plan_share.py prints it per file), and a reason for every other rule."""

from __future__ import annotations

import pytest

from bench.plan_share import CORPUS, corpus_shares, family_of
from bpfilter.ir import Family

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")


def test_ipv4_share_and_every_exception_explained() -> None:
    shares = [s for s in corpus_shares() if not s.skipped
              and family_of(CORPUS / s.name) is Family.IPV4]
    in_bpf = sum(s.in_bpf for s in shares)
    total = sum(s.total for s in shares)
    assert total > 400
    assert in_bpf / total >= 0.85, f"{in_bpf}/{total}"
    for s in shares:
        assert len(s.reasons) == s.total - s.in_bpf
        assert all(r.strip() for r in s.reasons)


def test_small_router_runs_entirely_in_bpf() -> None:
    (s,) = [s for s in corpus_shares() if s.name == "router-selivan.v4.rules"]
    assert (s.in_bpf, s.total) == (9, 9)
