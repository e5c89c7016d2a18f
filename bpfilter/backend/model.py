"""What codegen hands to the loader and pipeline: pure, frozen descriptions of programs.

Why separate: the pipeline, `bpfilter save` (counters) and tests read these without
knowing how the code was generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bpfilter.backend.mapdata import MapContents
from bpfilter.loader.program import ProgramSpec

FlavorName = Literal["xdp", "tc", "nf"]


class UnsupportedRule(ValueError):
    """A rule reachable from a compiled chain cannot be expressed in BPF (the planner
    should have asked `unsupported_reason` first and sent the table to netfilter)."""


@dataclass(frozen=True)
class CounterSlot:
    """Slot i of the per-CPU array map "counters" counts rule `rule_number` (1-based,
    iptables numbering) of `chain`, or the chain's policy when `rule_number` is None."""

    chain: str
    rule_number: int | None


@dataclass(frozen=True)
class CompiledProgram:
    """One BPF program implementing `chains` at `hook`.

    All programs returned by one `compile_table` call share the same counter layout
    (`counter_slots` is table-wide), so the pipeline may give them one shared
    "counters" map; with separate maps, sum the slots with equal (chain, rule_number).
    """

    name: str
    flavor: FlavorName
    hook: str  # nf: "INPUT"/"FORWARD"/"OUTPUT"; xdp/tc: "ingress"
    chains: tuple[str, ...]
    program: ProgramSpec
    counter_slots: tuple[CounterSlot, ...]
    llvm_ir: str = ""  # the generated LLVM IR text, for `bpfilter plan` and debugging
    # lookup: contents of the lookup maps among program.maps (by name); the loader
    # fills them before the program runs (mapdata.fill_map)
    map_contents: tuple[MapContents, ...] = ()
