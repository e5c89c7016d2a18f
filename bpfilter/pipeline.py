"""restore / save / flush / status: the whole pipeline, from text to kernel and back.

Order of a restore matters for safety: everything that can fail (parse, plan,
compile, verifier, netfilter fallback) happens before any attachment changes;
then links are swapped in place (`BPF_LINK_UPDATE`), so a packet always meets
either the old or the new program; only then is the old state removed.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from bpfilter import backend
from bpfilter.attach import Link, attach_netfilter, attach_tc, attach_xdp
from bpfilter.backend.emit import COUNTERS_MAP
from bpfilter.backend.flavors import IFNAMES_MAP
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import BUILTIN_CHAINS, Chain, Counters, Family, Ruleset, Table
from bpfilter.loader.maps import Map, MapSpec
from bpfilter.loader.program import Program
from bpfilter.plan import Plan, plan_ruleset
from bpfilter.state import LinkRecord, LoadedState, ProgramRecord, StateStore

# The filter table's netfilter priority (NF_IP_PRI_FILTER): the BPF program
# takes the filter table's place in the hook order.
NF_PRIORITY_FILTER = 0
COUNTER = struct.Struct("=QQ")


class PipelineError(Exception):
    """A failure after parsing, with what was being done; nothing was changed."""


class LockBusy(PipelineError):
    """Another bpfilter-restore holds the lock (iptables' exit status 4)."""


@dataclass(frozen=True)
class RestoreRequest:
    text: str
    family: Family = Family.IPV4
    filename: str = "<stdin>"
    hook: str = "auto"
    ifaces: tuple[str, ...] = ()
    counters: bool = False
    noflush: bool = False
    table: str | None = None
    test: bool = False
    wait: float | None = 0.0  # seconds to wait for the lock (-w N); None waits forever (-w)


@dataclass(frozen=True)
class RestoreResult:
    ruleset: Ruleset
    plan: Plan | None


@contextmanager
def locked(store: StateStore, wait: float | None) -> Iterator[None]:
    """One writer at a time per namespace and family, like iptables' xtables lock."""
    path = store.root / "state" / store.ns / f"{store.state_file.stem}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (fcntl.LOCK_NB if wait is not None else 0))
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockBusy(
                        "Another app is currently holding the xtables lock. "
                        + ("Perhaps you want to use the -w option?" if not wait
                           else f"Stopped waiting after {wait:g}s.")) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)



def loaded_ruleset(state: LoadedState | None, family: Family) -> Ruleset:
    if state is None or not state.ruleset_text:
        return Ruleset(family=family)
    return parse_restore(state.ruleset_text, family=family, filename="<loaded state>")


def restore(req: RestoreRequest) -> RestoreResult:
    store = StateStore(req.family)
    with locked(store, req.wait):
        old_state = store.load()
        old = loaded_ruleset(old_state, req.family)
        ruleset = parse_restore(req.text, family=req.family, filename=req.filename,
                                noflush=req.noflush, base=old, table_filter=req.table,
                                counters=req.counters)
        if req.test:
            return RestoreResult(ruleset, None)
        plan = plan_ruleset(ruleset, req.hook)
        new_state = _apply(store, old_state, ruleset, plan, req)
        store.save(new_state)
        return RestoreResult(ruleset, plan)


def _apply(store: StateStore, old: LoadedState | None, ruleset: Ruleset, plan: Plan,
           req: RestoreRequest) -> LoadedState:
    generation = (old.generation + 1) if old else 1
    # 1. compile and load everything; nothing attached changes if this fails.
    compiled = [cp for t in plan.bpf_tables
                for cp in backend.compile_table(t, ruleset.family, plan.flavor)]
    loaded: list[tuple[backend.CompiledProgram, Program, Map]] = []
    shared: dict[str, Map] = {}  # one "counters" / "ifnames" map per table, shared by its programs
    try:
        for cp in compiled:
            maps = [shared.get(spec.name) or shared.setdefault(spec.name, _create_map(spec, req))
                    for spec in cp.program.maps]
            prog = Program.load(cp.program, maps)
            loaded.append((cp, prog, shared[COUNTERS_MAP]))
        if COUNTERS_MAP in shared and compiled:
            _seed_counters(shared[COUNTERS_MAP], compiled[0], ruleset)
        # 2. the netfilter part (iptables-restore is itself atomic per table).
        _apply_netfilter(ruleset, plan, old, req)
        # 3. attach or swap in place, pin, record.
        records = _attach_all(store, old, loaded, req, generation)
    except Exception:
        for _, prog, _ in loaded:
            prog.close()
        raise
    _remove_stale(store, old, records)
    return LoadedState(family=int(ruleset.family), ruleset_text=print_ruleset(ruleset),
                       programs=records,
                       netfilter_tables=[t.name for t in plan.netfilter_tables],
                       generation=generation)


def _create_map(spec: MapSpec, req: RestoreRequest) -> Map:
    """Create a program's map; the interface-name map is filled from the namespace now."""
    m = Map.create(spec)
    if spec.name == IFNAMES_MAP:
        for name, ifindex in _interfaces(replace(req, ifaces=())):
            m.update(*backend.ifname_entry(ifindex, name))
    return m


def _seed_counters(counters: Map, cp: backend.CompiledProgram, ruleset: Ruleset) -> None:
    """-c: start each slot from the counters given in the input (on CPU 0)."""
    table = ruleset.table("filter")
    if table is None:
        return
    for index, slot in enumerate(cp.counter_slots):
        chain_name, number = slot.chain, slot.rule_number
        chain = table.chain(chain_name)
        if chain is None:
            continue
        c = chain.counters if number is None else chain.rules[number - 1].counters
        if c and (c.packets or c.bytes):
            ncpu = len(counters.lookup_percpu(struct.pack("=I", index)))
            values = [COUNTER.pack(c.packets, c.bytes)] + [COUNTER.pack(0, 0)] * (ncpu - 1)
            counters.update(struct.pack("=I", index), values)


def _interfaces(req: RestoreRequest) -> list[tuple[str, int]]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
    if req.ifaces:
        missing = [i for i in req.ifaces if i not in links]
        if missing:
            raise PipelineError(f"no such interface: {', '.join(missing)}")
        return [(i, links[i]) for i in req.ifaces]
    return sorted((name, idx) for name, idx in links.items() if name != "lo")


def _attach_all(store: StateStore, old: LoadedState | None,
                loaded: Sequence[tuple[backend.CompiledProgram, Program, Map]],
                req: RestoreRequest, generation: int) -> list[ProgramRecord]:
    old_links = {(lr.kind, lr.hook, lr.iface): lr
                 for p in (old.programs if old else []) for lr in p.links}
    for sub in ("links", "maps"):
        store.pin_path(sub).mkdir(parents=True, exist_ok=True)
    records = []
    for cp, prog, counters in loaded:
        counters_pin = f"maps/counters-{generation}"
        if not store.pin_path(counters_pin).exists():  # one map shared by the table's programs
            counters.pin(store.pin_path(counters_pin))
        record = ProgramRecord(cp.name, cp.flavor, cp.hook, list(cp.chains), counters_pin,
                               [(s.chain, s.rule_number) for s in cp.counter_slots])
        targets: list[tuple[str | None, int | None]]
        targets = [(None, None)] if cp.flavor == "nf" else list(_interfaces(req))
        for iface, ifindex in targets:
            key = (cp.flavor, cp.hook, iface)
            pin = "links/" + "-".join(x for x in (cp.flavor, cp.hook, iface) if x)
            previous = old_links.get(key)
            if previous and store.pin_path(previous.pin).exists():
                Link.from_pin(store.pin_path(previous.pin)).update(prog)
                pin = previous.pin
            else:
                link = _attach(cp, prog, ifindex, store.family)
                link.pin(store.pin_path(pin))
            record.links.append(LinkRecord(cp.flavor, cp.hook, iface, pin))
        records.append(record)
    return records


def _attach(cp: backend.CompiledProgram, prog: Program, ifindex: int | None,
            family: Family) -> Link:
    if cp.flavor == "nf":
        return attach_netfilter(prog, family, cp.hook, NF_PRIORITY_FILTER)
    if cp.flavor == "xdp":
        return attach_xdp(prog, ifindex)
    return attach_tc(prog, ifindex, direction=cp.hook)


def _remove_stale(store: StateStore, old: LoadedState | None,
                  records: Sequence[ProgramRecord]) -> None:
    """Detach links the new ruleset no longer uses and drop old counter pins."""
    if old is None:
        return
    kept = {lr.pin for r in records for lr in r.links}
    _unpin(store, old, keep=kept)


def _unpin(store: StateStore, state: LoadedState, keep: set[str] = frozenset()) -> int:
    """Detach and unpin a state's links (except `keep`) and its counter maps."""
    removed = 0
    for p in state.programs:
        for lr in p.links:
            path = store.pin_path(lr.pin)
            if lr.pin not in keep and path.exists():
                Link.from_pin(path).detach()
                path.unlink()
                removed += 1
    for pin in {p.counters_pin for p in state.programs}:
        store.pin_path(pin).unlink(missing_ok=True)
    return removed


def iptables_restore_command(family: Family) -> list[str]:
    """The host's own iptables-restore, for what stays in netfilter."""
    env = "BPFILTER_IP6TABLES_RESTORE" if family is Family.IPV6 else "BPFILTER_IPTABLES_RESTORE"
    default = "ip6tables-restore" if family is Family.IPV6 else "iptables-restore"
    return [os.environ.get(env, default), "-w"]


def _empty_table(name: str) -> Table:
    return Table(name, tuple(Chain(c, "ACCEPT") for c in BUILTIN_CHAINS[name]))


def _apply_netfilter(ruleset: Ruleset, plan: Plan, old: LoadedState | None,
                     req: RestoreRequest) -> None:
    """Hand the netfilter tables to iptables-restore; empty the ones now in BPF.

    Only tables bpfilter itself put into netfilter are ever emptied.
    """
    tables = list(plan.netfilter_tables)
    previously = set(old.netfilter_tables) if old else set()
    tables += [_empty_table(t.name) for t in plan.bpf_tables if t.name in previously]
    if not tables:
        return
    text = print_ruleset(Ruleset(ruleset.family, tuple(tables)), counters=req.counters)
    cmd = iptables_restore_command(ruleset.family) + (["-c"] if req.counters else [])
    proc = subprocess.run(cmd, input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"netfilter fallback ({' '.join(cmd)}) failed: "
                            f"{proc.stderr.strip() or proc.stdout.strip()}")


def read_counters(store: StateStore, state: LoadedState) -> dict[tuple[str, int | None], Counters]:
    """Sum every program's per-CPU counters by (chain, rule number)."""
    totals: dict[tuple[str, int | None], list[int]] = {}
    seen: set[str] = set()
    for p in state.programs:
        if p.counters_pin in seen:  # programs of one table share their counters map
            continue
        seen.add(p.counters_pin)
        m = Map.from_pin(store.pin_path(p.counters_pin))
        try:
            for index, slot in enumerate(p.counter_slots):
                acc = totals.setdefault((slot[0], slot[1]), [0, 0])
                for raw in m.lookup_percpu(struct.pack("=I", index)):
                    pk, by = COUNTER.unpack_from(raw)
                    acc[0] += pk
                    acc[1] += by
        finally:
            m.close()
    return {k: Counters(*v) for k, v in totals.items()}


def with_counters(ruleset: Ruleset, counts: dict[tuple[str, int | None], Counters]) -> Ruleset:
    tables = []
    for t in ruleset.tables:
        if t.name != "filter":
            tables.append(t)
            continue
        chains = []
        for c in t.chains:
            rules = tuple(r.with_(counters=counts.get((c.name, n), Counters()))
                          for n, r in enumerate(c.rules, start=1))
            policy = counts.get((c.name, None), Counters()) if c.builtin else c.counters
            chains.append(replace(c, counters=policy, rules=rules))
        tables.append(replace(t, chains=tuple(chains)))
    return replace(ruleset, tables=tuple(tables))


def save(family: Family, counters: bool = False, table: str | None = None) -> str:
    """What is loaded, as iptables-save prints it (policy counters always)."""
    store = StateStore(family)
    state = store.load()
    ruleset = loaded_ruleset(state, family)
    if state is not None and state.programs:
        ruleset = with_counters(ruleset, read_counters(store, state))
    if table:
        ruleset = replace(ruleset, tables=tuple(t for t in ruleset.tables if t.name == table))
    return print_ruleset(ruleset, counters=counters)


def flush(family: Family) -> int:
    """Detach and unpin everything bpfilter loaded here; returns links removed."""
    store = StateStore(family)
    with locked(store, None):
        state = store.load()
        if state is None:
            return 0
        removed = _unpin(store, state)
        if state.netfilter_tables:
            empty = Ruleset(family, tuple(_empty_table(t) for t in state.netfilter_tables))
            subprocess.run(iptables_restore_command(family), input=print_ruleset(empty),
                           capture_output=True, text=True, check=False)
        store.clear()
        return removed


def status(family: Family) -> str:
    store = StateStore(family)
    state = store.load()
    if state is None:
        return "nothing loaded"
    lines = [f"generation {state.generation}"]
    for p in state.programs:
        for lr in p.links:
            where = f"{lr.kind} {lr.hook}" + (f" on {lr.iface}" if lr.iface else "")
            alive = "attached" if store.pin_path(lr.pin).exists() else "MISSING"
            lines.append(f"{p.name}: {where} ({', '.join(p.chains)}) {alive}")
    for t in state.netfilter_tables:
        lines.append(f"table {t}: netfilter (iptables-restore)")
    return "\n".join(lines)
