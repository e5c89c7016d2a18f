"""Differential runs for IPv6: ip6tables-legacy in one router lab, bpfilter6 in its twin.

Why beside differential.py: that module's backends, packet specs and counter parsing
are IPv4's (iptables-legacy, bpfilter-restore, PacketSpec); the lab, the traffic
capture and the confirmation idea are shared. Packets come from rulegen6 (extension
header chains, fragments, neighbor discovery); an outcome is where a tag arrived:
"input" (a raw IPv6 socket on the router), "forward" (a tap behind it) or "lost".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bpfilter.verify.differential import BpfilterCli, IptablesLegacy
from bpfilter.verify.router import RouterLab
from bpfilter.verify.rulegen6 import Packet6

# bpfilter's netfilter side (hand-off, fallback) uses ip6tables-legacy like the reference:
# the nft variant translates some matches into nft expressions with other semantics
LEGACY = {"BPFILTER_IP6TABLES_RESTORE": "ip6tables-legacy-restore",
          "BPFILTER_IP6TABLES_SAVE": "ip6tables-legacy-save"}
# next headers the router's raw sockets listen for (the final protocol of a chain)
PROTOCOLS6 = (6, 17, 50, 58, 59)


class Ip6tablesLegacy(IptablesLegacy):
    """The reference: the kernel's ip6_tables, loaded with ip6tables-legacy-restore."""

    def __init__(self) -> None:
        super().__init__(6)


class Bpfilter6(BpfilterCli):
    """The candidate: ``ip netns exec DUT bpfilter6-restore --hook H [--iface in0] FILE``
    with BPFILTER_RUN_DIR in a test directory whose bpffs is mounted from the host's
    mount namespace (see differential.BpfilterCli for why)."""

    rules_stem = "ruleset6"

    def __init__(self, hook: str, run_dir: Path, ifaces: Sequence[str] = ("in0",)) -> None:
        super().__init__(hook, run_dir, ifaces, family=6)

    def _env(self) -> dict[str, str]:
        return {**super()._env(), **LEGACY}


def run6(lab: RouterLab, packets: Sequence[Packet6], *, early: bool = False) -> dict[int, str]:
    """Send the packets through the lab's router: tag → "input" | "forward" | "lost"."""
    frames = [p.frame(lab.src_mac, lab.dut_mac) for p in packets]
    expect = {p.tag for p in packets} if early else None
    cap = lab.send(frames, protocols=(), protocols6=PROTOCOLS6, expect=expect)
    out = {}
    for p in packets:
        out[p.tag] = ("input" if p.tag in cap.tags["input"] else
                      "forward" if p.tag in cap.tags["forward"] else "lost")
    return out


@dataclass
class Mismatch6:
    packet: Packet6
    reference: str
    candidate: str
    confirmed: bool = False

    def report(self) -> str:
        how = "confirmed alone" if self.confirmed else "NOT reproduced alone"
        return (f"  tag {self.packet.tag} ({self.packet.note}): ip6tables → {self.reference}, "
                f"bpfilter → {self.candidate} [{how}]\n    {self.packet.datagram.hex()}")


@dataclass
class Result6:
    seed: int
    text: str
    frames: int
    mismatches: list[Mismatch6] = field(default_factory=list)

    def report(self, limit: int = 10) -> str:
        lines = [f"seed {self.seed}: {len(self.mismatches)} of {self.frames} frames differ",
                 "--- ruleset ---", self.text.rstrip(), "--- mismatches ---"]
        lines += [m.report() for m in self.mismatches[:limit]]
        return "\n".join(lines)


def compare6(seed: int, text: str, packets: Sequence[Packet6], ref_lab: RouterLab,
             ref_outcomes: dict[int, str], cand_lab: RouterLab, *,
             confirm_limit: int = 5) -> Result6:
    """Candidate outcomes against the reference's; mismatches are re-sent alone to both
    (a fragment with its sibling) and only those that reproduce count."""
    cand = run6(cand_lab, packets)
    res = Result6(seed, text, len(packets))
    for p in packets:
        if ref_outcomes[p.tag] != cand[p.tag]:
            res.mismatches.append(Mismatch6(p, ref_outcomes[p.tag], cand[p.tag]))
    for mm in res.mismatches[:confirm_limit]:
        group = [q for q in packets if q.note.split(" frag ")[0] == mm.packet.note.split(
            " frag ")[0] and abs(q.tag - mm.packet.tag) <= 1]
        r = run6(ref_lab, group)[mm.packet.tag]
        c = run6(cand_lab, group)[mm.packet.tag]
        mm.confirmed = (r, c) == (mm.reference, mm.candidate)
    res.mismatches = [m for m in res.mismatches if m.confirmed or
                      res.mismatches.index(m) >= confirm_limit]
    return res
