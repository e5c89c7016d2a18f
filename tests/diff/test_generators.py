"""The generators must be reproducible and produce only valid input.

Reproducible: a failing seed must replay.  Valid: a ruleset iptables refuses
or a frame with a bad checksum would test the harness, not bpfilter.
"""

from __future__ import annotations

import struct

import pytest

from bpfilter.verify.packetgen import PacketGenerator
from bpfilter.verify.packets import checksum, find_tags, ip_datagrams
from bpfilter.verify.rulegen import generate_ruleset


def test_same_seed_same_ruleset_and_packets() -> None:
    a, b = generate_ruleset(7), generate_ruleset(7)
    assert a.text() == b.text()
    assert PacketGenerator(a, 7).generate(300) == PacketGenerator(b, 7).generate(300)
    assert generate_ruleset(8).text() != a.text()


def test_rulesets_cover_the_listed_features() -> None:
    text = "".join(generate_ruleset(seed).text() for seed in range(40))
    for feature in (" -g U", " -j U", "-j RETURN", "! -s ", "! -d ", " -f ", "! -f",
                    "--sport ", "--dport ", "--dports ", "-m multiport", "-i ", "-o ", "+ ",
                    "--icmp-type ", "-m length", "--src-range", "--dst-range", ":INPUT DROP",
                    ":FORWARD ACCEPT", "--tcp-flags", "/255.", "--syn", "--icmp-type any",
                    "--comment "):
        assert feature in text, feature


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("seed", range(4))
def test_packets_are_well_formed_and_uniquely_tagged(seed: int, family: int) -> None:
    ruleset = generate_ruleset(seed, family=family)
    specs = PacketGenerator(ruleset, seed).generate(2000, first_tag=100)
    tags = [t for s in specs for t in s.tags]
    assert len(tags) == len(set(tags)) >= 2000
    for spec in specs:
        assert spec.family == family
        for tag, datagram in zip(spec.tags, ip_datagrams(spec), strict=True):
            if family == 4:
                ihl = (datagram[0] & 15) * 4
                assert checksum(datagram[:ihl]) == 0, spec.describe()
                assert struct.unpack_from("!H", datagram, 2)[0] == len(datagram)
            else:
                assert struct.unpack_from("!H", datagram, 4)[0] == len(datagram) - 40
            assert len(datagram) <= 1500
            assert tag in find_tags(datagram), spec.describe()


def test_targeted_packets_exist_for_every_rule() -> None:
    ruleset = generate_ruleset(3)
    notes = {s.note for s in PacketGenerator(ruleset, 3).generate(100_000)}
    for index in range(1, len(ruleset.rules) + 1):
        assert f"rule {index} match" in notes


@pytest.mark.kernel
@pytest.mark.parametrize("family", [4, 6])
def test_iptables_accepts_every_generated_ruleset(topology, family: int) -> None:
    topo = topology("gen")
    topo.netns("x")
    tool = "iptables-legacy-restore" if family == 4 else "ip6tables-legacy-restore"
    for seed in range(60):
        proc = topo.exec("x", [tool, "--test"],
                         input=generate_ruleset(seed, family=family).text(), check=False)
        assert proc.returncode == 0, f"seed {seed}: {proc.stderr}"
