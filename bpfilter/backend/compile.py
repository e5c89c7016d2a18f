"""compile_table: IR table → BPF programs (plan → emit → LLVM → ELF → ProgramSpec)."""

from __future__ import annotations

from bpfilter.backend.emit import COUNTERS_MAP, ProgramEmitter
from bpfilter.backend.flavors import (
    IFNAMES_MAP,
    INGRESS_SEEN_MAP,
    INGRESS_SEEN_MAX,
    PROGRAM_SETS,
)
from bpfilter.backend.handoff import handoff_points, handoff_spec
from bpfilter.backend.lookup import MIN_RUN as LOOKUP_MIN_RUN
from bpfilter.backend.lookup import plan_lookups
from bpfilter.backend.model import CompiledProgram, FlavorName, UnsupportedRule
from bpfilter.backend.packet import IFNAMSIZ
from bpfilter.backend.plan import check_and_needs, plan_table
from bpfilter.backend.runs import MIN_RUN
from bpfilter.ir import Family, Table
from bpfilter.loader import syscall as sc
from bpfilter.loader.elf import program_spec_from_elf
from bpfilter.loader.maps import MapSpec
from bpfilter.loader.toolchain import compile_ir
from bpfilter.passes.gcpause import paused_gc

COUNTER_VALUE_SIZE = 16  # struct { u64 packets; u64 bytes; }
IFNAMES_MAX = 4096


def counters_spec(n_slots: int) -> MapSpec:
    return MapSpec(COUNTERS_MAP, sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, COUNTER_VALUE_SIZE,
                   max(n_slots, 1))


def ifnames_spec() -> MapSpec:
    return MapSpec(IFNAMES_MAP, sc.BPF_MAP_TYPE_HASH, 4, IFNAMSIZ, IFNAMES_MAX)


def ingress_seen_spec() -> MapSpec:
    return MapSpec(INGRESS_SEEN_MAP, sc.BPF_MAP_TYPE_ARRAY, 4, 4, INGRESS_SEEN_MAX)


MAP_SPECS = {IFNAMES_MAP: ifnames_spec, INGRESS_SEEN_MAP: ingress_seen_spec}


@paused_gc  # lookup (H9): 2.3 s → 1.0 s at 10k rules, see passes/gcpause.py
def compile_table(table: Table, family: Family, flavor: FlavorName, *, min_run: int = MIN_RUN,
                  lookups: bool = True, handoff_chains: frozenset[str] = frozenset(),
                  lookup_min_run: int = LOOKUP_MIN_RUN
                  ) -> tuple[CompiledProgram, ...]:
    """Compile the filter table for `flavor`; raises UnsupportedRule when a reachable
    rule cannot be compiled (ask `unsupported_reason` per rule first).

    "nf": one program per built-in chain at its own hook. "xdp"/"tc": the ingress
    program (INPUT + FORWARD) plus nf programs that complete it exactly — INPUT and
    FORWARD companions deciding only what ingress passes on (fragments, interfaces
    without the ingress program; see flavors.NfCompanionFlavor) and the OUTPUT chain.
    Each CompiledProgram's `flavor` says how to attach it.

    `min_run`: runs of at least this many rules differing in one exact value become a
    binary search (see runs.py); a huge value keeps every rule linear.
    `lookups`: runs of at least `lookup_min_run` 5-tuple rules become decision-tree
    lookups in maps (lookup.py); the maps' contents come back in
    CompiledProgram.map_contents.
    """
    if table.name != "filter":
        raise UnsupportedRule(f"table {table.name!r}: only the filter table is compiled")
    program_sets = PROGRAM_SETS
    if family != Family.IPV4:  # IPv6 (by H11): own prologues; linear walk, no runs/lookups
        from bpfilter.backend.flavors6 import PROGRAM_SETS6

        program_sets, min_run, lookups = PROGRAM_SETS6, 10**9, False
    plan = plan_table(table, family, min_run)
    trees = plan_lookups(table, plan.slot, lookup_min_run) if lookups else {}
    out: list[CompiledProgram] = []
    for fl in program_sets[flavor]:
        for prog_name, hook, chains in fl.programs():
            handoff = {}  # by H10: rules handed to netfilter per packet (handoff.py)
            if fl.name == "nf" and len(chains) == 1 and chains[0] in handoff_chains:
                handoff = handoff_points(table, family, chains[0])
            needs = check_and_needs(table, family, chains, fl.name, handoff)
            emitter = ProgramEmitter(plan, fl, needs, trees, handoff)
            module = emitter.build(prog_name, chains)
            text = str(module)
            maps = [counters_spec(len(plan.slots))]
            maps += [MAP_SPECS[name]() for name in fl.maps(needs)]
            if handoff:
                maps.append(handoff_spec())
            contents = tuple(c for lk in emitter.used_lookups.values() for c in lk.contents())
            maps.extend(c.spec() for c in contents)
            spec = program_spec_from_elf(compile_ir(text), fl.section, prog_name, fl.prog_type,
                                         fl.expected_attach_type, maps)
            out.append(CompiledProgram(prog_name, fl.name, hook, chains, spec, plan.slots,
                                       text, contents))
    return tuple(out)
