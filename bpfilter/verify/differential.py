"""Differential runs: the same ruleset and packets in real iptables and in bpfilter.

Two identical router labs ("twins", `bpfilter.verify.router`) get the same
ruleset — the reference through ``iptables-legacy-restore``, the candidate
through a `Backend` (``bpfilter-restore --hook H``, or iptables-legacy again
to check the harness itself) — and byte-identical frames.  For every frame
we record where it arrived (``input``, ``forward`` or ``lost``) and compare.

A mismatch is then *confirmed* by sending that packet alone to both twins
again (so a lost frame can never pass for a filtering bug), and explained by
the reference's own counters: zero them, send the packet alone, and read
``iptables-legacy-save -c`` — the non-zero lines are the rules it walked.
`bpfilter verify FILE` and tests/diff share this module.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from bpfilter.verify.netns import Topology
from bpfilter.verify.packetgen import PacketGenerator
from bpfilter.verify.packets import PacketSpec, build_frames
from bpfilter.verify.router import (
    DEFAULT_PROTOCOLS,
    LOCAL_NET,
    RouterLab,
    build_router_lab,
    usable_destination,
    usable_source,
)
from bpfilter.verify.rulegen import GenRuleset, RulesetGenerator
from bpfilter.verify.traffic import Capture

HOOKS = ("xdp", "tc", "nf")
BPF_FS_MAGIC = 0xCAFE4A11
COUNTER_LINE = re.compile(r"^\[(\d+):(\d+)\] (.*)$")
POLICY_LINE = re.compile(r"^:(\S+) (\S+) \[(\d+):(\d+)\]$")


class Backend(Protocol):
    """Something that can put a ruleset into a lab's router."""

    name: str

    def load(self, lab: RouterLab, ruleset_text: str) -> None: ...

    def counters(self, lab: RouterLab) -> str | None:
        """iptables-save -c style text of what is loaded, or None if unavailable."""
        ...

    def close(self) -> None: ...


class IptablesLegacy:
    """The reference: the kernel's own iptables (legacy, x_tables) in the router."""

    def __init__(self, family: int = 4) -> None:
        self.family = family
        self.tool = "iptables-legacy" if family == 4 else "ip6tables-legacy"
        self.name = self.tool

    def load(self, lab: RouterLab, ruleset_text: str) -> None:
        lab.topo.exec("dut", [f"{self.tool}-restore"], input=ruleset_text)

    def counters(self, lab: RouterLab) -> str | None:
        return lab.topo.exec("dut", [f"{self.tool}-save", "-c"]).stdout

    def close(self) -> None:
        return None


def bpfilter_cli_status(family: int = 4) -> tuple[bool, str]:
    """(ok, why): is ``bpfilter-restore`` (or bpfilter6-) installed, accepting ``--hook``?"""
    name = "bpfilter-restore" if family == 4 else "bpfilter6-restore"
    exe = shutil.which(name)
    if exe is None:
        return False, f"{name} is not on PATH"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return False, f"{name} --help failed: {proc.stderr.strip()[-300:]}"
    if "--hook" not in proc.stdout:
        return False, f"{name} does not accept --hook yet"
    return True, ""


def is_bpffs(path: Path) -> bool:
    try:
        return _fs_magic(path) == BPF_FS_MAGIC
    except (OSError, subprocess.CalledProcessError, ValueError):
        return False


def _fs_magic(path: Path) -> int:
    out = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True,
                         check=True).stdout.strip()
    return int(out, 16)


class BpfilterCli:
    """The candidate: ``ip netns exec DUT bpfilter-restore --hook H [--iface IF] FILE``.

    ``run_dir`` becomes BPFILTER_RUN_DIR; its ``bpffs`` is mounted here, from
    the host's mount namespace, because a bpffs mounted inside ``ip netns exec``
    disappears with the command (and with it every pinned link).
    """

    def __init__(self, hook: str, run_dir: Path, ifaces: Sequence[str] = ("in0",),
                 family: int = 4) -> None:
        if hook not in HOOKS:
            raise ValueError(f"hook must be one of {HOOKS}")
        self.hook = hook
        self.family = family
        self.prefix = "bpfilter" if family == 4 else "bpfilter6"
        self.name = f"{self.prefix}-{hook}"
        self.run_dir = run_dir
        self.ifaces = tuple(ifaces)
        self.bpffs = run_dir / "bpffs"
        self.bpffs.mkdir(parents=True, exist_ok=True)
        if not is_bpffs(self.bpffs):
            subprocess.run(["mount", "-t", "bpf", "bpf", str(self.bpffs)], check=True,
                           capture_output=True)
        self._n = 0

    rules_stem = "ruleset"  # file name of the n-th restored ruleset: {rules_stem}-{n}.rules

    def _env(self) -> dict[str, str]:
        return {"BPFILTER_RUN_DIR": str(self.run_dir)}

    def command(self, path: Path) -> list[str]:
        cmd = [f"{self.prefix}-restore", "--hook", self.hook]
        if self.hook in ("xdp", "tc"):
            for iface in self.ifaces:
                cmd += ["--iface", iface]
        return cmd + [str(path)]

    def load(self, lab: RouterLab, ruleset_text: str) -> None:
        self._n += 1
        path = self.run_dir / f"{self.rules_stem}-{self._n}.rules"
        path.write_text(ruleset_text)
        lab.topo.exec("dut", self.command(path), env=self._env())

    def counters(self, lab: RouterLab) -> str | None:
        proc = lab.topo.exec("dut", [f"{self.prefix}-save", "-c"], check=False,
                             env=self._env())
        return proc.stdout if proc.returncode == 0 else None

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.bpffs)], check=False, capture_output=True)


class BpfilterPipeline(BpfilterCli):
    """The candidate without the CLI: `bpfilter.pipeline.restore` in a forked child.

    Same effect as the CLI (the child enters the router's netns, BPFILTER_RUN_DIR
    points at ``run_dir``) — useful while the CLI is not integrated, and to
    debug the pipeline with a Python traceback.
    """

    def load(self, lab: RouterLab, ruleset_text: str) -> None:
        lab.topo.fork("dut", _restore_in_child, ruleset_text, self.hook,
                      self.ifaces if self.hook in ("xdp", "tc") else (), str(self.run_dir),
                      self.family)

    def counters(self, lab: RouterLab) -> str | None:
        try:
            return lab.topo.fork("dut", _save_in_child, str(self.run_dir), self.family)
        except Exception:  # noqa: BLE001 - counters only explain a mismatch; never fail on them
            return None


def _restore_in_child(text: str, hook: str, ifaces: tuple[str, ...], run_dir: str,
                      family: int) -> None:
    import os

    from bpfilter.ir import Family
    from bpfilter.pipeline import RestoreRequest, restore

    os.environ["BPFILTER_RUN_DIR"] = run_dir
    fam = Family.IPV4 if family == 4 else Family.IPV6
    restore(RestoreRequest(text, family=fam, hook=hook, ifaces=ifaces))


def _save_in_child(run_dir: str, family: int) -> str:
    import os

    from bpfilter.ir import Family
    from bpfilter.pipeline import save

    os.environ["BPFILTER_RUN_DIR"] = run_dir
    return save(Family.IPV4 if family == 4 else Family.IPV6, counters=True)


@dataclass
class Twin:
    """One lab plus the backend that loads rulesets into it."""

    lab: RouterLab
    backend: Backend
    loaded: str | None = None

    @classmethod
    def create(cls, topo: Topology, backend: Backend) -> Twin:
        return cls(build_router_lab(topo), backend)

    def load(self, ruleset_text: str) -> None:
        if self.loaded != ruleset_text:
            self.backend.load(self.lab, ruleset_text)
            self.loaded = ruleset_text

    def run(self, specs: Sequence[PacketSpec], *, early: bool = False) -> dict[int, str]:
        """Send ``specs`` and return tag → "input" | "forward" | "lost".

        ``early``: stop waiting once every tag arrived (for single-packet reruns).
        """
        frames = frames_of(self.lab, specs)
        protocols = tuple(sorted({s.proto for s in specs if s.family == 4}
                                 | set(DEFAULT_PROTOCOLS)))
        protocols6 = tuple(sorted({s.proto for s in specs if s.family == 6}))
        expect = {t for s in specs for t in s.tags} if early else None
        capture = self.lab.send(frames, protocols=protocols, protocols6=protocols6,
                                expect=expect)
        return outcomes(capture, specs)


def frames_of(lab: RouterLab, specs: Sequence[PacketSpec]) -> list[bytes]:
    return [f for s in specs for f in build_frames(s, lab.src_mac, lab.dut_mac)]


def outcomes(capture: Capture, specs: Sequence[PacketSpec]) -> dict[int, str]:
    result = {}
    for spec in specs:
        for tag in spec.tags:
            if tag in capture.tags["input"]:
                result[tag] = "input"
            elif tag in capture.tags["forward"]:
                result[tag] = "forward"
            else:
                result[tag] = "lost"
    return result


def counted(text: str) -> list[tuple[str, int]]:
    """(line, packets) for every rule, then every built-in policy, in iptables-save -c text."""
    rules, policies = [], []
    for line in text.splitlines():
        m = COUNTER_LINE.match(line)
        if m:
            rules.append((m.group(3), int(m.group(1))))
        p = POLICY_LINE.match(line)
        if p and p.group(2) != "-" and p.group(1) != "OUTPUT":  # OUTPUT: the router's replies
            policies.append((f"policy {p.group(1)} {p.group(2)}", int(p.group(3))))
    return rules + policies


def counter_walk(twin: Twin, spec: PacketSpec) -> list[str] | None:
    """The rules and policies whose counters moved when ``spec`` was sent alone.

    Counters are read before and after (no zeroing), so this works for any
    backend that can print them; None when the backend can not.
    """
    counters = getattr(twin.backend, "counters", None)
    before = counters(twin.lab) if counters else None
    if before is None:
        twin.run([spec], early=True)
        return None
    twin.run([spec], early=True)
    after = counters(twin.lab) or ""
    old, new = counted(before), counted(after)
    if [line for line, _ in old] != [line for line, _ in new]:
        return ["(counters unreadable: the ruleset text changed between reads)"]
    return [line for (line, a), (_, b) in zip(old, new, strict=True) if b > a]


@dataclass
class Mismatch:
    """One frame whose fate differed between the twins."""

    seed: int
    spec: PacketSpec
    tag: int
    reference: str
    candidate: str
    confirmed: bool | None = None
    walk: list[str] = field(default_factory=list)
    candidate_walk: list[str] | None = None

    def report(self) -> str:
        state = {True: "confirmed", False: "NOT reproduced alone (flaky?)",
                 None: "unchecked"}[self.confirmed]
        frame = self.spec.tags.index(self.tag) + 1
        lines = [f"ruleset seed {self.seed}: tag {self.tag} (frame {frame}/"
                 f"{len(self.spec.tags)}): iptables → {self.reference}, candidate → "
                 f"{self.candidate} [{state}]",
                 f"  packet: {self.spec.describe()}"]
        lines += [f"  iptables walk: {w}" for w in self.walk] or [
            "  iptables walk: (none) — no counted rule matched: dropped before the filter "
            "table, or hot-dropped by a match that found a truncated/malformed header"]
        if self.candidate_walk is not None:
            lines += [f"  candidate walk: {w}" for w in self.candidate_walk] or [
                "  candidate walk: (no counter moved)"]
        return "\n".join(lines)


@dataclass
class RulesetResult:
    seed: int
    ruleset_text: str
    frames: int
    mismatches: list[Mismatch]
    seconds: float

    def report(self, limit: int = 10) -> str:
        head = (f"ruleset seed {self.seed}: {len(self.mismatches)} mismatching frames of "
                f"{self.frames}\n--- ruleset ---\n{self.ruleset_text}--- mismatches ---")
        body = "\n".join(m.report() for m in self.mismatches[:limit])
        more = len(self.mismatches) - limit
        return head + "\n" + body + (f"\n... and {more} more" if more > 0 else "")


def _alone(spec: PacketSpec, tag: int) -> PacketSpec:
    """The same packet with a fresh tag and IP id, for a confirmation resend."""
    return replace(spec, ident=(spec.ident + 0x7777) % 0xFFFF + 1).with_tags(tag)


def compare(seed: int, ruleset_text: str, specs: Sequence[PacketSpec], reference: Twin,
            candidate: Twin, *, ref_outcomes: dict[int, str] | None = None,
            confirm_limit: int = 5) -> RulesetResult:
    """Run ``specs`` through both twins (reference outcomes may be given, cached)."""
    start = time.monotonic()
    if ref_outcomes is None:
        reference.load(ruleset_text)
        ref_outcomes = reference.run(specs)
    candidate.load(ruleset_text)
    cand_outcomes = candidate.run(specs)
    mismatches = [Mismatch(seed, spec, tag, ref_outcomes[tag], cand_outcomes[tag])
                  for spec in specs for tag in spec.tags
                  if ref_outcomes[tag] != cand_outcomes[tag]]
    fresh_tag = max((t for s in specs for t in s.tags), default=0) + 1_000_000
    checked: set[int] = set()
    for mm in mismatches[:confirm_limit]:
        if id(mm.spec) in checked:
            continue
        checked.add(id(mm.spec))
        reference.load(ruleset_text)
        again = _alone(mm.spec, fresh_tag)
        fresh_tag += len(again.tags)
        index = mm.spec.tags.index(mm.tag)
        ref_again = reference.run([again], early=True)[again.tags[index]]
        cand_again = candidate.run([again], early=True)[again.tags[index]]
        mm.confirmed = ref_again == mm.reference and cand_again == mm.candidate
        mm.walk = counter_walk(reference, _alone(mm.spec, fresh_tag)) or []
        fresh_tag += len(again.tags)
        mm.candidate_walk = counter_walk(candidate, _alone(mm.spec, fresh_tag))
        fresh_tag += len(again.tags)
    frames = sum(len(s.tags) for s in specs)
    return RulesetResult(seed, ruleset_text, frames, mismatches, time.monotonic() - start)


def run_reference(reference: Twin, ruleset_text: str, specs: Sequence[PacketSpec]
                  ) -> dict[int, str]:
    reference.load(ruleset_text)
    return reference.run(specs)


IPV4_IN_TEXT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![\d.])")
PORT_IN_TEXT = re.compile(r"--(?:dport|sport|dports|sports|ports|destination-ports?|"
                          r"source-ports?)\s+(\S+)")


def anchors_from_text(ruleset_text: str, seed: int = 0) -> dict[str, list[int]]:
    """Addresses and ports a ruleset file mentions, sorted into the lab's address plan.

    Why: random packets only hit a rule about 203.0.113.7 if they are aimed at
    it.  Addresses that can not be a source or destination in the lab (see
    `bpfilter.verify.router`) are left out; the generator's own anchors fill in.
    """
    anchors = RulesetGenerator(seed).anchors()
    for text, _ in IPV4_IN_TEXT.findall(ruleset_text):
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if usable_source(addr):
            anchors["src"].append(int(addr))
        elif addr in LOCAL_NET:
            anchors["local"].append(int(addr))
        elif usable_destination(addr):
            anchors["fwd0" if int(addr) < 0x40000000 else "fwd1"].append(int(addr))
    for spec in PORT_IN_TEXT.findall(ruleset_text):
        for part in re.split(r"[,:]", spec):
            if part.isdigit() and int(part) <= 65535:
                anchors["port"].append(int(part))
    return anchors


def packets_for_text(ruleset_text: str, frames: int, seed: int = 0) -> list[PacketSpec]:
    """Random packets aimed at what a (non-generated) ruleset file talks about."""
    ruleset = GenRuleset(seed, {}, [], [], anchors_from_text(ruleset_text, seed))
    return PacketGenerator(ruleset, seed).generate(frames)


def verify_ruleset(ruleset_text: str, candidate: Backend, *, frames: int = 2000,
                   seed: int = 0) -> RulesetResult:
    """Build twin labs, run ``ruleset_text`` in iptables-legacy and in ``candidate``.

    The engine behind ``bpfilter verify FILE``: returns the comparison (its
    ``report()`` is printable); the labs are deleted before returning.
    """
    specs = packets_for_text(ruleset_text, frames, seed)
    with Topology("vref") as ref_topo, Topology("vcand") as cand_topo:
        reference = Twin.create(ref_topo, IptablesLegacy())
        twin = Twin.create(cand_topo, candidate)
        try:
            return compare(seed, ruleset_text, specs, reference, twin)
        finally:
            candidate.close()


def verify_with_bpfilter(ruleset_text: str, hook: str = "nf", *, frames: int = 2000,
                         seed: int = 0) -> RulesetResult:
    """`bpfilter verify`: twin labs, iptables-legacy against `bpfilter-restore --hook`.

    The candidate's state (bpffs included) lives in a temporary run directory
    that is unmounted and removed afterwards.
    """
    import shutil
    import tempfile

    run_dir = Path(tempfile.mkdtemp(prefix="bpfilter-verify-"))
    try:
        return verify_ruleset(ruleset_text, BpfilterCli(hook, run_dir), frames=frames,
                              seed=seed)
    finally:
        subprocess.run(["umount", "-l", str(run_dir / "bpffs")], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)

