"""`bpfilter migrate` takes over a live iptables ruleset; `bpfilter rollback` gives it back.

The "host" is the lab's router namespace with a ruleset loaded by the real
iptables-legacy-restore (the variant named through BPFILTER_IPTABLES_SAVE /
_RESTORE, as a host's own `iptables-save` would be). After --apply the filter
rules are gone from netfilter and BPF does the filtering (its counters move);
the nat table stays in netfilter untouched. Rollback puts netfilter back.
"""

from __future__ import annotations

import re

import pytest

from tests.kernel.test_dropin_safety import V1, Dut, dut  # noqa: F401
from tests.kernel.test_pipeline import Probe, counters_of

pytestmark = pytest.mark.kernel


def _filter_rules(d: Dut) -> list[str]:
    text = d.run("iptables-legacy-save", "-t", "filter").stdout
    return [x for x in text.splitlines() if x.startswith("-A ")]


def _v1_filters(probe: Probe) -> None:
    assert probe.arrived("10.0.0.1", 7001) == 0
    assert probe.arrived("10.0.0.1", 7000) == 5
    assert probe.arrived("20.0.0.1", 7000) == 0
    assert probe.arrived("70.0.0.1", 7000) == 5


def test_migrate_dry_run_apply_and_rollback(dut) -> None:  # noqa: F811
    d, probe = dut
    r = d.run("iptables-legacy-restore", stdin=V1)
    assert r.returncode == 0, r.stderr
    live_rules = _filter_rules(d)
    assert len(live_rules) == 4

    # Dry run: plan + verification on twin namespaces; nothing changes.
    r = d.run("bpfilter", "migrate", "--frames", "150")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "filter/udp_in #1 (line" in r.stdout and "bpf at nf:INPUT" in r.stdout
    assert re.search(r"verification: \d+ packets, same verdict", r.stdout), r.stdout
    assert "dry run: nothing changed" in r.stdout
    assert _filter_rules(d) == live_rules
    assert d.run("bpfilter", "status").stdout.strip() == "nothing loaded"

    # Apply: BPF takes the filter table, netfilter keeps nat.
    r = d.run("bpfilter", "migrate", "--apply", "--no-verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "migrated: bpfilter runs" in r.stdout
    assert _filter_rules(d) == []
    assert "-A POSTROUTING -o eth9 -j MASQUERADE" in d.nat()
    _v1_filters(probe)
    saved = d.run("bpfilter-save", "-c").stdout
    assert counters_of(saved, "--dport 7001 -j DROP")[0] >= 5  # BPF decided those packets
    assert counters_of(saved, "-A FORWARD -d 20.0.0.0/8")[0] >= 5

    r = d.run("bpfilter", "migrate", "--apply", "--no-verify")
    assert r.returncode == 1 and "already migrated" in r.stderr

    # Rollback: netfilter first, then BPF goes.
    r = d.run("bpfilter", "rollback")
    assert r.returncode == 0, r.stderr
    assert _filter_rules(d) == live_rules
    assert "-A POSTROUTING -o eth9 -j MASQUERADE" in d.nat()
    assert d.run("bpfilter", "status").stdout.strip() == "nothing loaded"
    before = counters_of(d.run("iptables-legacy-save", "-c").stdout, "--dport 7001 -j DROP")
    _v1_filters(probe)
    after = counters_of(d.run("iptables-legacy-save", "-c").stdout, "--dport 7001 -j DROP")
    assert after[0] == before[0] + 5  # netfilter decides again
    assert d.run("bpfilter", "rollback").returncode == 1  # nothing left to roll back


def test_migrate_refused_input_changes_nothing(dut) -> None:  # noqa: F811
    """A live ruleset bpfilter cannot even parse: refused, netfilter untouched."""
    d, probe = dut
    assert d.run("iptables-legacy-restore", stdin=V1).returncode == 0
    live_rules = _filter_rules(d)
    r = d.run("bpfilter", "migrate", "--apply", "--no-verify",
              BPFILTER_IPTABLES_SAVE="/bin/false")
    assert r.returncode == 1 and "read the live ruleset" in r.stderr
    assert _filter_rules(d) == live_rules
    r = d.run("bpfilter", "migrate", "--apply", "--no-verify", BPFILTER_TEST_FAIL_AT="attach")
    assert r.returncode == 1 and "attach: failure forced" in r.stderr
    assert _filter_rules(d) == live_rules
    assert d.run("bpfilter", "status").stdout.strip() == "nothing loaded"
    _v1_filters(probe)


def test_migrate_refuses_rules_split_across_variants(dut) -> None:  # noqa: F811
    """iptables-nft-save warns that legacy tables exist: migrating half is refused."""
    d, probe = dut
    assert d.run("iptables-legacy-restore", stdin=V1).returncode == 0
    r = d.run("bpfilter", "migrate", "--apply", "--no-verify",
              BPFILTER_IPTABLES_SAVE="iptables-nft-save")
    assert r.returncode == 1, r.stdout
    assert "both iptables-nft and iptables-legacy" in r.stderr
    assert len(_filter_rules(d)) == 4
    assert d.run("bpfilter", "status").stdout.strip() == "nothing loaded"


V6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 7001 -j DROP
-A FORWARD -d 2001:db8::/33 -j DROP
COMMIT
"""


def test_migrate_ipv6_apply_and_rollback(dut) -> None:  # noqa: F811
    d, _ = dut
    env = {"BPFILTER_IP6TABLES_SAVE": "ip6tables-legacy-save",
           "BPFILTER_IP6TABLES_RESTORE": "ip6tables-legacy-restore"}
    assert d.run("ip6tables-legacy-restore", stdin=V6).returncode == 0

    def rules6() -> list[str]:
        text = d.run("ip6tables-legacy-save", "-t", "filter").stdout
        return [x for x in text.splitlines() if x.startswith("-A ")]

    before = rules6()
    assert len(before) == 2
    r = d.run("bpfilter", "migrate", "-6", "--apply", **env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped (the twin labs are IPv4 only)" in r.stdout
    assert rules6() == []
    assert "-A FORWARD -d 2001:db8::/33 -j DROP" in d.run("bpfilter6-save").stdout
    assert d.run("bpfilter", "status").stdout.strip() == "nothing loaded"  # IPv4 untouched
    r = d.run("bpfilter", "rollback", "-6", **env)
    assert r.returncode == 0, r.stderr
    assert rules6() == before
    assert d.run("bpfilter", "status", "-6").stdout.strip() == "nothing loaded"
