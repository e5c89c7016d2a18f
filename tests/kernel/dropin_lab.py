"""Twin namespaces for drop-in tests: the real iptables-legacy tools in one, bpfilter in the other.

Why: "behaves like iptables-restore" is only proven by running the real
iptables-legacy-restore 1.8.9 on the same input and comparing exit codes,
error texts and the resulting iptables-save output. Both sides run inside
namespaces made here (never the host's firewall) and are deleted afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
_COUNTERS = re.compile(r"\[\d+:\d+\]")


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


def run_in(ns: str, argv: list[str], stdin: str = "", env: dict[str, str] | None = None,
           timeout: float = 180) -> Result:
    """One command in `ns` as its own process (`ip netns exec`), like a user runs it."""
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin.encode(
        "utf-8", "surrogateescape"), capture_output=True, env=env, timeout=timeout)
    return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                  proc.stderr.decode(errors="replace"))


def bpfilter_env(run_dir: Path) -> dict[str, str]:
    """State in the test's own directory; netfilter fallback through iptables-legacy."""
    return {**os.environ, "BPFILTER_RUN_DIR": str(run_dir),
            "BPFILTER_IPTABLES_RESTORE": "iptables-legacy-restore",
            "BPFILTER_IP6TABLES_RESTORE": "ip6tables-legacy-restore",
            "BPFILTER_IPTABLES_SAVE": "iptables-legacy-save",
            "BPFILTER_IP6TABLES_SAVE": "ip6tables-legacy-save"}


def tables_of(save_text: str, counters: bool) -> dict[str, str]:
    """iptables-save text → {table: text}, comments dropped, counters zeroed unless kept."""
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in save_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("*"):
            cur = out.setdefault(line[1:], [])
            continue
        assert cur is not None, save_text
        cur.append(line if counters else _COUNTERS.sub("[0:0]", line))
    return {t: "\n".join(lines) for t, lines in out.items()}


def normalize_error(text: str) -> str:
    """Program names and the variant tag differ on purpose; the rest must not."""
    text = text.replace("iptables-legacy-restore", "iptables-restore")
    text = text.replace("ip6tables-legacy-restore", "ip6tables-restore")
    text = text.replace("bpfilter-restore", "iptables-restore")
    text = text.replace("bpfilter6-restore", "ip6tables-restore")
    return text.replace("(legacy)", "(bpfilter)").strip()


class Twins:
    """`real` runs iptables-legacy-*, `bpf` runs bpfilter-*; same input, compare."""

    def __init__(self, real_ns: str, bpf_ns: str, run_dir: Path, v6: bool = False) -> None:
        self.real_ns, self.bpf_ns = real_ns, bpf_ns
        self.env = bpfilter_env(run_dir)
        self.ip, self.bp = ("ip6tables", "bpfilter6") if v6 else ("iptables", "bpfilter")

    def restore(self, flags: list[str], text: str) -> tuple[Result, Result]:
        real = run_in(self.real_ns, [f"{self.ip}-legacy-restore", *flags], text)
        ours = run_in(self.bpf_ns, [str(BIN / f"{self.bp}-restore"), *flags], text, self.env)
        return real, ours

    def saves(self, counters: bool = False) -> tuple[dict[str, str], dict[str, str]]:
        flag = ["-c"] if counters else []
        real = run_in(self.real_ns, [f"{self.ip}-legacy-save", *flag])
        ours = run_in(self.bpf_ns, [str(BIN / f"{self.bp}-save"), *flag], env=self.env)
        assert real.rc == 0 and ours.rc == 0, (real.stderr, ours.stderr)
        return tables_of(real.stdout, counters), tables_of(ours.stdout, counters)

    def bpfilter(self, *argv: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
        exe = argv[0] if "/" in argv[0] else str(BIN / argv[0])
        return run_in(self.bpf_ns, [exe, *argv[1:]], stdin, {**self.env, **(env or {})})
