"""The pure parts of restore bookkeeping: state/journal files, interface patterns, counters.

Why: a state file written by an older bpfilter must still load (a reboot-less
upgrade must not lose track of what is attached), and the journal must round-trip
exactly, or a killed restore could not be undone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpfilter import pipeline
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Counters, Family
from bpfilter.state import Journal, LinkRecord, LoadedState, ProgramRecord, StateStore


def test_old_state_without_new_fields_loads() -> None:
    old = {"family": 2, "ruleset_text": "", "generation": 3, "netfilter_tables": ["nat"],
           "programs": [{"name": "filter_input", "flavor": "nf", "hook": "INPUT",
                         "chains": ["INPUT"], "counters_pin": "maps/counters-3",
                         "counter_slots": [["INPUT", 1], ["INPUT", None]],
                         "links": [{"kind": "nf", "hook": "INPUT", "iface": None,
                                    "pin": "links/nf-INPUT"}]}]}
    s = LoadedState.from_json(json.dumps(old))
    assert s.generation == 3 and s.netns_cookie == 0 and s.iface_patterns == []
    p = s.programs[0]
    assert p.prog_pin == "" and p.counter_slots == [("INPUT", 1), ("INPUT", None)]
    assert p.links == [LinkRecord("nf", "INPUT", None, "links/nf-INPUT", None)]
    assert LoadedState.from_json(s.to_json()) == s


def test_state_and_journal_round_trip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BPFILTER_RUN_DIR", str(tmp_path))
    store = StateStore(Family.IPV6)
    assert store.load() is None and store.load_journal() is None
    state = LoadedState(10, "*filter\nCOMMIT\n", [ProgramRecord(
        "filter_ingress", "xdp", "ingress", ["INPUT"], "maps/counters-1", [("INPUT", None)],
        [LinkRecord("xdp", "ingress", "vx0", "links/xdp-ingress-vx0", 7)],
        "progs/filter_ingress-1")], [], 1, ["vx+"], 42)
    store.save(state)
    assert store.load() == state
    journal = Journal(2, state.to_json(), [("links/nf-INPUT", "rollback/links_nf-INPUT")],
                      ["links/xdp-ingress-vx1"], ["maps/counters-2"], "*nat\nCOMMIT\n")
    store.save_journal(journal)
    assert store.load_journal() == journal
    assert store.journal_file.name == "ipv6.journal.json"
    store.clear_journal()
    assert store.load_journal() is None
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically (tmp + rename)


@pytest.mark.parametrize(("pattern", "name", "hit"), [
    ("+", "eth0", True), ("+", "lo", False), ("veth+", "veth12", True), ("veth+", "vet", False),
    ("veth+", "veth", True), ("eth0", "eth0", True), ("eth0", "eth01", False),
])
def test_iface_patterns_are_iptables_wildcards(pattern: str, name: str, hit: bool) -> None:
    assert pipeline.iface_matches(pattern, name) is hit


def test_named_tables_respects_table_flag() -> None:
    text = "*filter\nCOMMIT\n# *raw\n*nat\nCOMMIT\n*\n"
    assert pipeline.named_tables(text) == {"filter", "nat"}
    assert pipeline.named_tables(text, "nat") == {"nat"}


def test_noflush_restarts_policy_counters_of_opened_tables_only() -> None:
    rs = parse_restore("*filter\n:INPUT ACCEPT [5:50]\nCOMMIT\n*raw\n:OUTPUT DROP [7:70]\n"
                       "COMMIT\n", family=Family.IPV4, counters=True)
    out = pipeline._zero_policy_counters(rs, {"filter"})
    assert out.table("filter").chain("INPUT").counters == Counters()
    assert out.table("raw").chain("OUTPUT").counters == Counters(7, 70)


def test_test_hook_names_the_step(monkeypatch) -> None:
    monkeypatch.setenv(pipeline.FAIL_AT_ENV, "attach")
    pipeline._test_point("netfilter")  # other points pass
    with pytest.raises(pipeline.PipelineError, match="attach: failure forced"):
        pipeline._test_point("attach")
