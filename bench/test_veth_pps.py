"""Pure parts of bench/veth_pps.py's drop mode: the counters it reads and the ruleset it
installs (the kernel run itself is the benchmark, not a test)."""

from __future__ import annotations

from pathlib import Path

from bench.rulesets import blocklist, classbench, restore_text
from bench.veth_pps import nft_counter_packets, nft_text, policy_packets, with_policy


def test_policy_packets_reads_input_policy_counter() -> None:
    text = ("*filter\n:INPUT DROP [1234:56789]\n:FORWARD ACCEPT [7:8]\n"
            "[5:6] -A INPUT -s 1.2.3.4/32 -j ACCEPT\nCOMMIT\n")
    assert policy_packets(text) == 1234
    assert policy_packets(text, "FORWARD") == 7


def test_nft_counter_packets() -> None:
    text = "table ip filter {\n\tcounter decided {\n\t\tpackets 42 bytes 2520\n\t}\n}\n"
    assert nft_counter_packets(text) == 42


def test_drop_policy(tmp_path: Path) -> None:
    assert ":INPUT DROP [0:0]" in with_policy(restore_text(classbench(5)), "drop")
    text = nft_text(blocklist(5), "blocklist", tmp_path, "drop")
    assert "policy drop;" in text
    assert text.rstrip().splitlines()[-3].strip() == "counter name decided drop"
    assert "counter name decided" not in nft_text(blocklist(5), "blocklist", tmp_path)
