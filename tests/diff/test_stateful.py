"""Stateful rulesets: bpfilter (nf hook) must treat real connections as iptables-legacy.

Seeded random rulesets built from the stateful rules real firewalls use (conntrack /
state in every form the kernel gives data for, ctdir/ctstatus/tuple options, mark,
ttl, pkttype, addrtype --dst-type) mixed with REJECT, LOG and limit rules (BPF hands
the packets that reach them to netfilter, which holds the whole chain:
backend/handoff.py; a limit evaluated twice would show as different outcomes), loaded
into the router of a cli — dut — srv lab (tests/diff/stateful_lab.py). Seeded flows:
TCP handshakes with data and FIN or RST close, connections to closed ports (RST
through OUTPUT/FORWARD), UDP request/response and port-unreachable errors (RELATED),
broadcast and multicast datagrams, ICMP echo, and crafted TCP segments with odd flag
combinations (mid-stream ACK, FIN alone, SYN+FIN, NULL, XMAS, ...), which conntrack
classifies as NEW or INVALID. Every flow's outcome must be identical.

Replay one seed: BPFILTER_STATEFUL_SEED=<seed> BPFILTER_STATEFUL_RULESETS=1.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_netns
from tests.diff.stateful_lab import StatefulTwin, random_flows

pytestmark = [pytest.mark.kernel, pytest.mark.diff]

RULESETS = int(os.environ.get("BPFILTER_STATEFUL_RULESETS", "8"))
FIRST_SEED = int(os.environ.get("BPFILTER_STATEFUL_SEED", "0"))
FLOWS = int(os.environ.get("BPFILTER_STATEFUL_FLOWS", "36"))

CT_ANY = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED")


def _states(rng: random.Random) -> str:
    return ",".join(rng.sample(CT_ANY[:4], rng.randint(1, 3)))


def _state_rule(rng: random.Random) -> str:
    neg = "! " if rng.random() < 0.15 else ""
    if rng.random() < 0.5:
        return f"-m state {neg}--state {_states(rng)}"
    return f"-m conntrack {neg}--ctstate {_states(rng)}"


def _proto(rng: random.Random) -> str:
    return rng.choice(("", "-p tcp", "-p tcp -m tcp --dport 80", "-p tcp -m tcp --dport 22",
                       "-p udp", "-p udp -m udp --dport 53", "-p icmp",
                       "-p tcp -m tcp --tcp-flags SYN,ACK,FIN,RST SYN",
                       "-p tcp -m tcp --dport 8443", "-p udp -m udp --dport 5353"))


def _extra(rng: random.Random) -> str:
    return rng.choice((
        "-m conntrack --ctstatus SEEN_REPLY", "-m conntrack ! --ctstatus ASSURED",
        "-m conntrack --ctdir REPLY", "-m conntrack --ctdir ORIGINAL",
        "-m conntrack --ctorigsrc 10.1.0.0/24", "-m conntrack ! --ctorigdst 10.2.0.2",
        "-m conntrack --ctreplsrc 10.2.0.2 --ctproto 6",
        "-m conntrack --ctproto 17 --ctorigdstport 53",
        "-m conntrack --ctorigsrcport 1024:65535 --ctrepldstport 20000:30000",
        "-m conntrack --ctstate NEW,SNAT", "-m conntrack --ctstatus NONE",
        "-m conntrack ! --ctstatus NONE", "-m conntrack --ctstate UNTRACKED",
        "-m ttl --ttl-gt 63", "-m ttl --ttl-lt 64", "-m ttl ! --ttl-eq 64",
        "-m mark --mark 0x0", "-m mark ! --mark 0x1/0x1",
        "-m pkttype --pkt-type unicast", "-m pkttype ! --pkt-type broadcast",
        "-m addrtype --dst-type LOCAL", "-m addrtype ! --dst-type LOCAL",
        "-m addrtype --dst-type BROADCAST", "-m addrtype --dst-type MULTICAST,BROADCAST",
        "-m addrtype --dst-type UNICAST", "-m addrtype ! --dst-type UNICAST,ANYCAST",
        "-m pkttype --pkt-type multicast",
    ))


def _rule(rng: random.Random, chain: str) -> str:
    parts = [f"-A {chain}"]
    if chain == "FORWARD" and rng.random() < 0.3:
        parts.append(rng.choice(("-i dcli0 -o dsrv0", "-i dsrv0", "-o dcli0")))
    p = _proto(rng)
    if p:
        parts.append(p)
    r = rng.random()
    if r < 0.55:
        parts.append(_state_rule(rng))
    if r > 0.35:
        parts.append(_extra(rng))
    if chain != "OUTPUT" and rng.random() < 0.08:  # run by netfilter after a hand-off
        parts.append(rng.choice(("-m limit --limit 6/min --limit-burst 3 -j ACCEPT",
                                 "-m limit --limit 1/sec --limit-burst 2 -j DROP",
                                 '-j LOG --log-prefix "h10 "')))
    elif chain != "OUTPUT" and rng.random() < 0.07:
        parts.append(rng.choice(("-j REJECT", "-j REJECT --reject-with tcp-reset")
                                if "tcp" in p else ("-j REJECT",)))
    else:
        parts.append(rng.choice(("-j ACCEPT", "-j ACCEPT", "-j DROP")))
    return " ".join(parts)


def stateful_ruleset(seed: int) -> str:
    rng = random.Random(seed)
    lines = ["*filter"]
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        lines.append(f":{chain} {rng.choice(('ACCEPT', 'DROP', 'DROP'))} [0:0]")
    lines.append(":stateful - [0:0]")
    if rng.random() < 0.7:  # the classic head of every real firewall
        lines.append("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        lines.append("-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT")
    if rng.random() < 0.5:
        lines.append("-A INPUT -m conntrack --ctstate INVALID -j DROP")
    for chain, n in (("INPUT", 5), ("FORWARD", 5), ("OUTPUT", 3), ("stateful", 3)):
        lines.extend(_rule(rng, chain) for _ in range(rng.randint(1, n)))
    lines.append(f"-A {rng.choice(('INPUT', 'FORWARD'))} -j stateful")
    if rng.random() < 0.6:
        lines.append("-A OUTPUT -m state --state ESTABLISHED,RELATED -j ACCEPT")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    require_netns()
    from bpfilter.verify.differential import BpfilterPipeline, IptablesLegacy

    os.environ.setdefault("BPFILTER_IPTABLES_RESTORE", "iptables-legacy-restore")
    os.environ.setdefault("BPFILTER_IPTABLES_SAVE", "iptables-legacy-save")
    ref = StatefulTwin.create("sref")
    try:
        cand = StatefulTwin.create("scand")
    except BaseException:
        ref.close()
        raise
    backend = BpfilterPipeline("nf", tmp_path_factory.mktemp("stateful-run"))
    try:
        yield ref, IptablesLegacy(), cand, backend
    finally:
        cand.topo.fork("dut", _flush_bpfilter, str(backend.run_dir))
        backend.close()
        cand.close()
        ref.close()


def _flush_bpfilter(run_dir: str) -> None:
    from bpfilter.ir import Family
    from bpfilter.pipeline import flush

    os.environ["BPFILTER_RUN_DIR"] = run_dir
    flush(Family.IPV4)


def _plan_note(text: str) -> str:
    from bpfilter.frontend.parser import parse_restore
    from bpfilter.ir import Family
    from bpfilter.plan import plan_ruleset

    plan = plan_ruleset(parse_restore(text, family=Family.IPV4))
    return plan.summary()


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + RULESETS))
def test_stateful_flows_match_iptables(twins: tuple, seed: int) -> None:
    ref, ref_backend, cand, cand_backend = twins
    text = stateful_ruleset(seed)
    flows = random_flows(random.Random(seed * 7919 + 1), FLOWS)
    ref.reset()
    cand.reset()
    ref_backend.load(ref.lab, text)
    cand_backend.load(cand.lab, text)
    want = ref.run(flows)
    got = cand.run(flows)
    bad = [(i, f, w, g) for i, (f, w, g) in enumerate(zip(flows, want, got, strict=True))
           if w != g]
    assert not bad, (f"seed {seed}: {len(bad)} of {len(flows)} flows differ "
                     f"({_plan_note(text)})\n{text}\n"
                     + "\n".join(f"#{i} {f}: iptables {w!r}, bpfilter {g!r}"
                                 for i, f, w, g in bad))


def test_rulesets_exercise_bpf_and_fallback() -> None:
    """The generator gives both all-BPF tables and chain splits (REJECT chains)."""
    from bpfilter.frontend.parser import parse_restore
    from bpfilter.ir import Family
    from bpfilter.plan import plan_ruleset

    splits = full = 0
    for seed in range(40):
        plan = plan_ruleset(parse_restore(stateful_ruleset(seed), family=Family.IPV4))
        names = {t.name for t in plan.netfilter_tables}
        splits += "filter" in names and bool(plan.bpf_tables)
        full += "filter" not in names
    assert splits and full


CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "real"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.v4.rules")
                      if not p.name.startswith("NEG")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not CORPUS_FILES, reason=f"no corpus at {CORPUS}")
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_rulesets_with_stateful_flows(twins: tuple, name: str) -> None:
    """The real rulesets (all their tables) in both twins, the same seeded flows."""
    ref, ref_backend, cand, cand_backend = twins
    text = (CORPUS / name).read_text()
    for twin in (ref, cand):
        for s in sorted(set(re.findall(r"--match-set (\S+)", text))):
            twin.topo.exec("dut", ["ipset", "-exist", "create", s, "hash:net"])
    if ref.topo.exec("dut", ["iptables-legacy-restore", "--test"], input=text,
                     check=False).returncode != 0:
        pytest.skip("iptables-legacy refuses it here")
    flows = random_flows(random.Random(len(text)), FLOWS)
    for twin, backend in ((ref, ref_backend), (cand, cand_backend)):
        twin.reset()
        backend.load(twin.lab, text)
    want = ref.run(flows)
    got = cand.run(flows)
    for twin in (ref, cand):  # the next case starts from empty tables
        twin.topo.exec("dut", ["iptables-legacy-restore"], input=EMPTY_TABLES)
    bad = [(f, w, g) for f, w, g in zip(flows, want, got, strict=True) if w != g]
    assert not bad, f"{name}: {len(bad)} flows differ ({_plan_note(text)})\n" + "\n".join(
        f"{f}: iptables {w!r}, bpfilter {g!r}" for f, w, g in bad)


EMPTY_TABLES = "".join(f"*{t}\nCOMMIT\n" for t in ("raw", "mangle", "nat"))
