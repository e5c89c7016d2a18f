"""restore / save / flush / status: the whole pipeline, from text to kernel and back.

Order of a restore matters for safety: everything that can fail (parse, plan,
compile, verifier, netfilter fallback) happens before any attachment changes;
then links are swapped in place (`BPF_LINK_UPDATE`), so a packet always meets
either the old or the new program; only then is the old state removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bpfilter import backend, inplace
from bpfilter.attach import Link, attach_netfilter, attach_tc, attach_xdp
from bpfilter.attach.link import AttachError
from bpfilter.attach.netfilter import slot_pin_path
from bpfilter.backend import ctenable, handoff
from bpfilter.backend.emit import COUNTERS_MAP
from bpfilter.backend.flavors import IFNAMES_MAP
from bpfilter.backend.mapdata import MapContents, fill_map
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import BUILTIN_CHAINS, Chain, Counters, Family, Ruleset, Table
from bpfilter.loader.maps import Map, MapSpec
from bpfilter.loader.program import Program, ProgramSpec
from bpfilter.plan import Plan, plan_ruleset
from bpfilter.state import (
    Journal,
    LinkRecord,
    LoadedState,
    ProgramRecord,
    StateStore,
    netns_cookie,
)

# The filter table's netfilter priority (NF_IP_PRI_FILTER): the BPF program
# takes the filter table's place in the hook order.
NF_PRIORITY_FILTER = 0
COUNTER = struct.Struct("=QQ")


class PipelineError(Exception):
    """A failure after parsing, with what was being done; nothing was changed."""


class RollbackIncomplete(PipelineError):
    """A failed restore could not be undone entirely; the message lists what is left."""


class InterruptedAfterCommit(KeyboardInterrupt):
    """Ctrl-C arrived during the commit; it was deferred and the commit completed."""


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
    in_place: bool = False  # written into the live lookup maps, nothing recompiled (H13)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (bench)


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


# --- test-only hooks ------------------------------------------------------------
# BPFILTER_TEST_FAIL_AT=verifier|netfilter|attach|commit makes a restore fail at that
# point (verifier: the real verifier is handed a program it must reject), and
# BPFILTER_TEST_PAUSE_AT=<point> stops there until the file named by
# BPFILTER_TEST_PAUSE_FILE (created at the pause) is removed, so a test can kill
# the process at a known place. Points: prepare (after parsing, before any kernel
# change), swap (after the first attachment changed), commit (all kernel changes
# done, state not yet saved). For tests only; never set them in production.
FAIL_AT_ENV = "BPFILTER_TEST_FAIL_AT"
PAUSE_AT_ENV = "BPFILTER_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "BPFILTER_TEST_PAUSE_FILE"


def _test_point(point: str) -> None:
    if os.environ.get(FAIL_AT_ENV) == point:
        raise PipelineError(f"{point}: failure forced by {FAIL_AT_ENV} (test hook)")
    if os.environ.get(PAUSE_AT_ENV) == point and os.environ.get(PAUSE_FILE_ENV):
        marker = Path(os.environ[PAUSE_FILE_ENV])
        marker.write_text(str(os.getpid()))
        while marker.exists():
            time.sleep(0.02)


def _forced_verifier_failure(spec: ProgramSpec) -> ProgramSpec:
    """`exit` with r0 never written: a program every verifier refuses (R0 !read_ok)."""
    return replace(spec, insns=struct.pack("<BBhi", 0x95, 0, 0, 0))


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C / SIGTERM / SIGHUP wait until the commit is complete or rolled back."""
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- state found on disk ----------------------------------------------------------

def current_state(store: StateStore, discard: bool = True) -> LoadedState | None:
    """The loaded state, or None when there is none or it belongs to a dead namespace.

    A namespace's inode can be reused by a new namespace after the old one is
    deleted; its state (and pins, if any survived) then describe nothing here:
    the pins are dropped and the state forgotten instead of being trusted.
    """
    state = store.load()
    if state is None:
        return None
    cookie = netns_cookie()
    if state.netns_cookie and cookie and state.netns_cookie != cookie:
        if not discard:  # read-only callers just ignore it
            return None
        for pin in _pins_of(state):
            _unlink_pin(store, pin)
        store.clear()
        return None
    return state


def _pins_of(state: LoadedState) -> set[str]:
    pins = {lr.pin for p in state.programs for lr in p.links}
    pins |= {p.counters_pin for p in state.programs}
    pins |= {pin for p in state.programs for pin in p.map_pins.values()}
    return pins | {p.prog_pin for p in state.programs if p.prog_pin}


def _unlink_pin(store: StateStore, pin: str) -> None:
    for path in (store.pin_path(pin), Path(slot_pin_path(store.pin_path(pin)))):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def recover(store: StateStore) -> str | None:
    """Finish or undo a restore that died during its commit (see state.Journal).

    Call with the lock held. Returns what was done, None when there was nothing.
    """
    journal = store.load_journal()
    if journal is None:
        return None
    state = store.load()
    old = LoadedState.from_json(journal.old_state) if journal.old_state else None
    if state is not None and state.generation == journal.generation:
        _remove_stale(store, old, state.programs)
        for _, prog_pin in journal.updated:
            _unlink_pin(store, prog_pin)
        store.clear_journal()
        return f"finished the interrupted restore of generation {journal.generation}"
    _rollback(store, journal)
    return f"rolled back the interrupted restore of generation {journal.generation}"


def _rollback(store: StateStore, journal: Journal) -> None:
    """Put back every program, link and netfilter table the journal says changed."""
    errors = []
    for pin, key, value in journal.map_backups:  # in-place update: old elements back
        try:
            m = Map.from_pin(store.pin_path(pin))
            try:
                m.update(bytes.fromhex(key), bytes.fromhex(value))
            finally:
                m.close()
        except OSError as e:
            errors.append(f"put back map {pin}: {e}")
    for link_pin, prog_pin in journal.updated:
        link_path, prog_path = store.pin_path(link_pin), store.pin_path(prog_pin)
        if link_path.exists() and prog_path.exists():
            try:
                prog = Program.from_pin(prog_path)
                try:
                    Link.from_pin(link_path).update(prog)
                finally:
                    prog.close()
            except OSError as e:
                errors.append(f"put back {link_pin}: {e}")
        _unlink_pin(store, prog_pin)
    for pin in journal.created:
        path = store.pin_path(pin)
        if path.exists():
            try:
                Link.from_pin(path).detach()
            except OSError as e:
                errors.append(f"detach {pin}: {e}")
        _unlink_pin(store, pin)
    for pin in journal.new_pins:
        _unlink_pin(store, pin)
    if journal.netfilter_backup is not None:
        family = Family(json.loads(journal.old_state)["family"]) if journal.old_state \
            else store.family
        proc = subprocess.run(iptables_restore_command(family), input=journal.netfilter_backup,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            errors.append(f"restore netfilter tables: {proc.stderr.strip()}")
    store.clear_journal()
    if errors:
        raise RollbackIncomplete("rollback incomplete: " + "; ".join(errors))


# --- restore ------------------------------------------------------------------------

def restore(req: RestoreRequest) -> RestoreResult:
    """Parse, plan, load and swap in a ruleset; on any failure the old one stays."""
    store = StateStore(req.family)
    with locked(store, req.wait):
        recover(store)
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        old_state = current_state(store)
        # the loaded ruleset (and the kernel's counters) matter only for tables the input
        # keeps (not named, or --noflush): a one-rule re-restore of a 10k-rule table need
        # not parse the loaded text (0.4 s) nor read 10k per-CPU counter slots (0.1 s)
        names = inplace.state_tables(old_state.ruleset_text) if old_state else []
        kept = set(names) - named_tables(req.text, req.table)
        old: Ruleset | None = None
        if kept or req.noflush or len(names) > 1:
            old = loaded_ruleset(old_state, req.family)
            if kept or req.noflush:
                old = _with_live_counters(store, old_state, old)
        times["load_state_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ruleset = parse_restore(req.text, family=req.family, filename=req.filename,
                                noflush=req.noflush, base=old, table_filter=req.table,
                                counters=req.counters)
        if req.noflush and not req.counters:
            ruleset = _zero_policy_counters(ruleset, named_tables(req.text, req.table))
        times["parse_s"] = time.perf_counter() - t0
        if req.test:
            return RestoreResult(ruleset, None)
        t0 = time.perf_counter()
        plan = plan_ruleset(ruleset, req.hook)
        times["plan_s"] = time.perf_counter() - t0
        done = _apply_in_place(store, old_state, names, ruleset, plan, req, times)
        if done is not None:
            return RestoreResult(ruleset, plan, True, times)
        t0 = time.perf_counter()
        _apply(store, old_state, ruleset, plan, req)
        times["full_s"] = time.perf_counter() - t0
        return RestoreResult(ruleset, plan, False, times)


# --- in-place re-restore (H13; bpfilter/inplace.py) ----------------------------------
NO_INPLACE_ENV = "BPFILTER_NO_INPLACE"  # "1": always recompile (benchmarks compare both)


class _NotInPlace(Exception):
    """A replacement was refused after others were written: undo them, recompile."""


def _apply_in_place(store: StateStore, old: LoadedState | None, loaded: Sequence[str],
                    ruleset: Ruleset, plan: Plan, req: RestoreRequest,
                    times: dict[str, float]) -> LoadedState | None:
    """Write a change of map-held rules only into the live lookup maps (nothing compiled,
    loaded or attached: the programs and links stay); None: take the full path."""
    if os.environ.get(NO_INPLACE_ENV) == "1" or req.test:
        return None
    if not inplace.eligible(old, loaded, ruleset, plan.flavor, len(plan.netfilter_tables),
                            bool(plan.handoff_chains), req.ifaces, req.noflush):
        return None
    assert old is not None
    t0 = time.perf_counter()
    text = print_ruleset(ruleset)
    new = ruleset.table("filter")
    assert new is not None
    # the loaded table: the new one with the lines that differ put back (no full parse)
    current = inplace.current_from_text(old.ruleset_text, text, new, ruleset.family)
    prepared = None if current is None else inplace.prepare(store, old, current, new,
                                                            ruleset.family)
    times["in_place_prepare_s"] = time.perf_counter() - t0  # diff, trees rebuilt, log replayed
    if prepared is None:
        return None
    t0 = time.perf_counter()
    try:
        with _signals_deferred():
            return _commit_in_place(store, old, text, ruleset, req, prepared, times)
    finally:
        prepared.close()
        times["in_place_write_s"] = time.perf_counter() - t0  # maps, counters, state


def _commit_in_place(store: StateStore, old: LoadedState, text: str, ruleset: Ruleset,
                     req: RestoreRequest, prepared: inplace.Prepared,
                     times: dict[str, float]) -> LoadedState | None:
    """The nodes elements to be rewritten go into the journal first; a failure or a
    SIGKILLed run puts them back (the new leaf lists sit in unused room, so the old
    element is again exactly what the maps meant)."""
    generation = old.generation + 1
    journal = Journal(generation, old.to_json(), map_backups=prepared.backups())
    store.save_journal(journal)
    try:
        _test_point("prepare")
        t0 = time.perf_counter()
        for n, (lk, position, rule) in enumerate(prepared.changes):
            if not prepared.lives[lk.nodes_map].replace(position, rule):
                raise _NotInPlace
            if n == 0:
                _test_point("swap")
        times["in_place_maps_s"] = time.perf_counter() - t0  # LiveLookup.replace only
        t0 = time.perf_counter()
        # counters restart as iptables-restore's replaced table's do (or from -c input);
        # not undone by a rollback: a failed re-restore may leave them at 0
        inplace.reset_counters(store, old, ruleset, req.counters)
        times["in_place_counters_s"] = time.perf_counter() - t0
        state = replace(old, ruleset_text=text, generation=generation,
                        inplace_log=[*old.inplace_log, *prepared.log],
                        netns_cookie=netns_cookie())
        _test_point("commit")
        store.save(state)  # the commit point
    except _NotInPlace:
        _rollback(store, journal)
        return None
    except BaseException as failure:
        try:
            _rollback(store, journal)
        except PipelineError as undo:
            raise RollbackIncomplete(f"{failure}\n{undo}") from failure
        raise
    store.clear_journal()
    return state


def _with_live_counters(store: StateStore, state: LoadedState | None, ruleset: Ruleset
                        ) -> Ruleset:
    """The loaded ruleset with the kernel's counters, so rules a restore keeps (other
    tables, --noflush) keep counting from where they were, as libiptc does."""
    if state is None or not state.programs:
        return ruleset
    try:
        return with_counters(ruleset, read_counters(store, state))
    except OSError:  # pins gone: nothing to carry over
        return ruleset


def named_tables(text: str, table: str | None = None) -> set[str]:
    """Tables an iptables-restore input opens (``*name`` lines), after -T."""
    names = {line[1:].split()[0] for line in text.splitlines()
             if line.startswith("*") and line[1:].split()}
    return {n for n in names if table is None or n == table}


def _zero_policy_counters(ruleset: Ruleset, tables: set[str]) -> Ruleset:
    """iptables-legacy-restore -n (no -c) restarts the policy counters of the tables it
    opens, while rules it keeps keep theirs (checked against 1.8.9)."""
    out = []
    for t in ruleset.tables:
        if t.name in tables:
            t = replace(t, chains=tuple(replace(c, counters=Counters()) if c.builtin else c
                                        for c in t.chains))
        out.append(t)
    return replace(ruleset, tables=tuple(out))


Loaded = tuple[backend.CompiledProgram, Program, dict[str, Map]]


def _load_all(compiled: Sequence[backend.CompiledProgram], ruleset: Ruleset,
              req: RestoreRequest) -> list[Loaded]:
    """Create maps and load every program (the verifier runs here); nothing attached yet."""
    loaded: list[Loaded] = []
    shared: dict[str, Map] = {}  # one "counters" / "ifnames" map per table, shared by its programs
    try:
        for cp in compiled:
            contents = {c.name: c for c in cp.map_contents}
            maps = [shared.get(spec.name)
                    or shared.setdefault(spec.name, _create_map(spec, contents.get(spec.name)))
                    for spec in cp.program.maps]
            spec = cp.program
            if os.environ.get(FAIL_AT_ENV) == "verifier":
                spec = _forced_verifier_failure(spec)
            try:
                prog = Program.load(spec, maps)
            except OSError as e:
                raise PipelineError(f"the kernel verifier refused program {cp.name} "
                                    f"({', '.join(cp.chains)}): {e}") from e
            loaded.append((cp, prog, shared))
        if COUNTERS_MAP in shared and compiled:
            _seed_counters(shared[COUNTERS_MAP], compiled[0], ruleset)
    except BaseException:
        for _, prog, _ in loaded:
            prog.close()
        raise
    return loaded


def _apply(store: StateStore, old: LoadedState | None, ruleset: Ruleset, plan: Plan,
           req: RestoreRequest) -> LoadedState:
    generation = (old.generation + 1) if old else 1
    compiled = [cp for t in plan.bpf_tables
                for cp in backend.compile_table(t, ruleset.family, plan.flavor,
                                                handoff_chains=plan.handoff_chains)]
    _test_point("prepare")
    loaded = _load_all(compiled, ruleset, req)
    committed: LoadedState | None = None
    try:
        with _signals_deferred():
            committed = _commit(store, old, ruleset, plan, req, loaded, generation)
        return committed
    except KeyboardInterrupt:  # delivered when the deferred signals are unblocked
        if committed is None:
            raise
        raise InterruptedAfterCommit("interrupted after the new ruleset was committed "
                                     "(the new ruleset is in force)") from None
    finally:
        for _, prog, _ in loaded:
            prog.close()  # what is attached is held by its link and pins


def _commit(store: StateStore, old: LoadedState | None, ruleset: Ruleset, plan: Plan,
            req: RestoreRequest, loaded: Sequence[Loaded], generation: int) -> LoadedState:
    """Every kernel change, journalled first; undone entirely if any step fails."""
    journal = Journal(generation, old.to_json() if old else None)
    store.save_journal(journal)
    try:
        checker = _pin_checker(store, plan, loaded, generation, journal)
        _apply_netfilter(store, ruleset, plan, old, req, journal, checker)
        if ctenable.needs_conntrack(plan.bpf_tables):  # before any program reads ct state
            ctenable.enable(ruleset.family)
        records = _attach_all(store, old, loaded, req, generation, journal)
        patterns = list(req.ifaces) or ["+"]
        state = LoadedState(family=int(ruleset.family), ruleset_text=print_ruleset(ruleset),
                            programs=records,
                            netfilter_tables=[t.name for t in plan.netfilter_tables],
                            generation=generation,
                            iface_patterns=patterns if plan.flavor != "nf" else [],
                            netns_cookie=netns_cookie())
        _test_point("commit")
        store.save(state)  # the commit point
    except BaseException as failure:
        try:
            _rollback(store, journal)
        except PipelineError as undo:  # say both: what failed, and what could not be undone
            raise RollbackIncomplete(f"{failure}\n{undo}") from failure
        raise
    _remove_stale(store, old, records)
    for _, prog_pin in journal.updated:
        _unlink_pin(store, prog_pin)
    _unpin_checkers(store, keep=f"progs/{handoff.CHECKER_NAME}-{generation}")
    store.clear_journal()
    if not ctenable.needs_conntrack(plan.bpf_tables):
        ctenable.disable(ruleset.family)
    return state


def _pin_checker(store: StateStore, plan: Plan, loaded: Sequence[Loaded], generation: int,
                 journal: Journal) -> str | None:
    """Load and pin the hand-off checker (backend/handoff.py) on the programs' shared
    "handoff" map; netfilter's copy of the handed-off chains names its pin."""
    maps = next((m for _, _, m in loaded if handoff.HANDOFF_MAP in m), None)
    if not plan.handoff_chains or maps is None:
        return None
    pin = f"progs/{handoff.CHECKER_NAME}-{generation}"
    store.pin_path("progs").mkdir(parents=True, exist_ok=True)
    _unlink_pin(store, pin)
    journal.new_pins.append(pin)
    store.save_journal(journal)
    prog = Program.load(handoff.checker_spec(), [maps[handoff.HANDOFF_MAP]])
    try:
        prog.pin(store.pin_path(pin))
    finally:
        prog.close()
    return str(store.pin_path(pin))


def _unpin_checkers(store: StateStore, keep: str | None = None) -> None:
    """Old checkers: netfilter's rules hold them while they are in use."""
    for path in store.pin_path("progs").glob(f"{handoff.CHECKER_NAME}-*"):
        if keep is None or path != store.pin_path(keep):
            path.unlink(missing_ok=True)


def _create_map(spec: MapSpec, contents: MapContents | None) -> Map:
    """Create a program's map, filled before any program can read it: lookup maps from
    the compiled contents, the interface-name map from the namespace's interfaces."""
    m = Map.create(spec)
    try:
        if contents is not None:
            fill_map(m, contents)
        if spec.name == IFNAMES_MAP:
            for name, ifindex in _all_interfaces().items():
                m.update(*backend.ifname_entry(ifindex, name))
    except BaseException:
        m.close()
        raise
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


def _all_interfaces() -> dict[str, int]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}


def iface_matches(pattern: str, name: str) -> bool:
    """iptables' interface rule: 'eth+' is every name starting with 'eth'; '+' all but lo."""
    if pattern == "+":
        return name != "lo"
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


def _interfaces(patterns: Sequence[str]) -> list[tuple[str, int]]:
    """Interfaces for xdp/tc: named ones must exist; patterns may match none yet."""
    links = _all_interfaces()
    missing = [p for p in patterns if not p.endswith("+") and p not in links]
    if missing:
        raise PipelineError(f"no such interface: {', '.join(missing)}")
    return sorted((n, i) for n, i in links.items()
                  if any(iface_matches(p, n) for p in (patterns or ["+"])))


def _attach_all(store: StateStore, old: LoadedState | None, loaded: Sequence[Loaded],
                req: RestoreRequest, generation: int, journal: Journal) -> list[ProgramRecord]:
    """Swap programs under existing links, attach new ones; every change journalled."""
    current = _all_interfaces() if any(cp.flavor != "nf" for cp, _, _ in loaded) else {}
    old_links = {(lr.kind, lr.hook, lr.iface): lr
                 for p in (old.programs if old else []) for lr in p.links
                 if lr.iface is None or lr.ifindex in (None, current.get(lr.iface))}
    for sub in ("links", "maps", "progs", "rollback"):
        store.pin_path(sub).mkdir(parents=True, exist_ok=True)
    ifaces = [] if all(cp.flavor == "nf" for cp, _, _ in loaded) else _interfaces(req.ifaces)
    plan: list[tuple[backend.CompiledProgram, Program, ProgramRecord, str | None, int | None]]
    plan = []
    records = []
    pinned_maps: set[int] = set()
    for cp, prog, maps in loaded:
        counters = maps[COUNTERS_MAP]
        counters_pin = f"maps/counters-{generation}"
        if id(counters) not in pinned_maps:  # one map shared by the table's programs
            _unlink_pin(store, counters_pin)  # left by a killed run of this generation
            journal.new_pins.append(counters_pin)
            store.save_journal(journal)
            counters.pin(store.pin_path(counters_pin))
            pinned_maps.add(id(counters))
        map_pins = {}
        for spec in cp.program.maps:  # lookup maps: a re-restore rewrites them in place
            if spec.name.startswith("lk"):
                map_pins[spec.name] = f"maps/{spec.name}-{generation}"
                if id(maps[spec.name]) not in pinned_maps:
                    _unlink_pin(store, map_pins[spec.name])
                    journal.new_pins.append(map_pins[spec.name])
                    store.save_journal(journal)
                    maps[spec.name].pin(store.pin_path(map_pins[spec.name]))
                    pinned_maps.add(id(maps[spec.name]))
        prog_pin = f"progs/{cp.name}-{generation}"
        _unlink_pin(store, prog_pin)
        journal.new_pins.append(prog_pin)
        store.save_journal(journal)
        prog.pin(store.pin_path(prog_pin))
        record = ProgramRecord(cp.name, cp.flavor, cp.hook, list(cp.chains), counters_pin,
                               [(s.chain, s.rule_number) for s in cp.counter_slots],
                               prog_pin=prog_pin, map_pins=map_pins)
        records.append(record)
        targets = [(None, None)] if cp.flavor == "nf" else ifaces
        plan.extend((cp, prog, record, iface, ifindex) for iface, ifindex in targets)
    for n, (cp, prog, record, iface, ifindex) in enumerate(plan):
        if n == len(plan) - 1:
            _test_point("attach")
        record.links.append(_attach_one(store, old_links, cp, prog, iface, ifindex, journal))
        if n == 0:
            _test_point("swap")
    return records


def _attach_one(store: StateStore, old_links: dict[tuple[str, str, str | None], LinkRecord],
                cp: backend.CompiledProgram, prog: Program, iface: str | None,
                ifindex: int | None, journal: Journal) -> LinkRecord:
    key = (cp.flavor, cp.hook, iface)
    previous = old_links.get(key)
    if previous and store.pin_path(previous.pin).exists():
        link = Link.from_pin(store.pin_path(previous.pin))
        try:
            backup = f"rollback/{previous.pin.replace('/', '_')}"
            _unlink_pin(store, backup)
            old_prog = Program.from_id(link.prog_id)
            try:
                old_prog.pin(store.pin_path(backup))
            finally:
                old_prog.close()
            journal.updated.append((previous.pin, backup))
            store.save_journal(journal)
            link.update(prog)
        finally:
            link.close()
        return LinkRecord(cp.flavor, cp.hook, iface, previous.pin, ifindex)
    pin = "links/" + "-".join(x for x in (cp.flavor, cp.hook, iface) if x)
    _unlink_pin(store, pin)
    journal.created.append(pin)
    store.save_journal(journal)
    # nf programs sit right before the filter table's priority (nothing standard runs
    # in between); a hand-off program must stay before netfilter's copy of its chain
    # (backend/handoff.py), so for it there is no later fallback place
    ho = any(m.name == handoff.HANDOFF_MAP for m in cp.program.maps)
    link = _attach(cp.name, cp.flavor, cp.hook, prog, ifindex, store.family,
                   NF_PRIORITY_FILTER - 1, fallback=not ho)
    try:
        link.pin(store.pin_path(pin))
    except BaseException:
        link.detach()
        raise
    finally:
        link.close()
    return LinkRecord(cp.flavor, cp.hook, iface, pin, ifindex)


def _attach(name: str, flavor: str, hook: str, prog: Program, ifindex: int | None,
            family: Family, priority: int = NF_PRIORITY_FILTER - 1,
            fallback: bool = True) -> Link:
    try:
        if flavor == "nf":
            try:
                return attach_netfilter(prog, family, hook, priority)
            except AttachError as e:
                # The kernel allows no BPF link at the priority of another hook (EBUSY).
                # Right after the filter table is the same place in the hook order
                # (security is at 50).
                if not fallback or getattr(e.__cause__, "errno", None) != errno.EBUSY:
                    raise
                return attach_netfilter(prog, family, hook, NF_PRIORITY_FILTER + 1)
        if flavor == "xdp":
            return attach_xdp(prog, ifindex)
        return attach_tc(prog, ifindex, direction=hook)
    except (OSError, AttachError) as e:
        # one XDP program per interface: the other family's table may hold it (by H11)
        hint = ("; an interface holds one XDP program: is the other family's table on xdp "
                "here? use --hook tc or nf for one of them") if flavor == "xdp" else ""
        raise PipelineError(f"attach {name} ({flavor} {hook}"
                            + (f" ifindex {ifindex}" if ifindex else "") + f"): {e}{hint}") from e


def _remove_stale(store: StateStore, old: LoadedState | None,
                  records: Sequence[ProgramRecord]) -> None:
    """Detach links the new ruleset no longer uses and drop old counter/program pins."""
    if old is None:
        return
    kept = {lr.pin for r in records for lr in r.links}
    kept |= {r.counters_pin for r in records} | {r.prog_pin for r in records}
    kept |= {pin for r in records for pin in r.map_pins.values()}
    _unpin(store, old, keep=kept)


def _unpin(store: StateStore, state: LoadedState, keep: set[str] = frozenset()) -> int:
    """Detach and unpin a state's links (except `keep`) and its map/program pins."""
    removed = 0
    for p in state.programs:
        for lr in p.links:
            path = store.pin_path(lr.pin)
            if lr.pin not in keep and path.exists():
                try:
                    Link.from_pin(path).detach()
                except OSError:
                    pass  # a link whose device is gone: only the pin is left to remove
                _unlink_pin(store, lr.pin)
                removed += 1
    pins = {p.counters_pin for p in state.programs} | {p.prog_pin for p in state.programs}
    pins |= {pin for p in state.programs for pin in p.map_pins.values()}
    for pin in pins:
        if pin and pin not in keep:
            _unlink_pin(store, pin)
    return removed


def attach_new(family: Family) -> list[str]:
    """Give interfaces that appeared since the restore the filter (`bpfilter attach-new`).

    The xdp/tc programs are pinned, and the state keeps the --iface patterns:
    every interface matching a pattern without an attachment gets one, and its
    name goes into the programs' interface-name map (for -i/-o rules). Meant to
    be run by a udev rule or a network hook when interfaces appear.
    """
    store = StateStore(family)
    with locked(store, None):
        recover(store)
        state = current_state(store)
        if state is None or not state.programs:
            return []
        links = _all_interfaces()
        added: list[str] = []
        for p in state.programs:
            if not p.prog_pin or not store.pin_path(p.prog_pin).exists():
                continue
            prog = Program.from_pin(store.pin_path(p.prog_pin))
            try:
                _fill_ifnames(prog, links)
                if p.flavor == "nf":
                    continue
                stale = [lr for lr in p.links if lr.iface is not None
                         and links.get(lr.iface) != lr.ifindex]
                for lr in stale:  # the device went away (or was re-created): drop the pin
                    _unlink_pin(store, lr.pin)
                    p.links.remove(lr)
                have = {lr.iface for lr in p.links}
                for name, ifindex in sorted(links.items()):
                    if name in have or not any(iface_matches(pt, name)
                                               for pt in state.iface_patterns):
                        continue
                    pin = "links/" + "-".join((p.flavor, p.hook, name))
                    _unlink_pin(store, pin)
                    link = _attach(p.name, p.flavor, p.hook, prog, ifindex, family)
                    try:
                        link.pin(store.pin_path(pin))
                    finally:
                        link.close()
                    p.links.append(LinkRecord(p.flavor, p.hook, name, pin, ifindex))
                    added.append(f"{p.name} {p.flavor} {p.hook} on {name}")
            finally:
                prog.close()
        store.save(state)
        return added


def _fill_ifnames(prog: Program, links: dict[str, int]) -> None:
    for m in prog.maps():
        try:
            if m.spec.name == IFNAMES_MAP:
                for name, ifindex in links.items():
                    m.update(*backend.ifname_entry(ifindex, name))
        finally:
            m.close()


def iptables_restore_command(family: Family) -> list[str]:
    """The host's own iptables-restore, for what stays in netfilter."""
    env = "BPFILTER_IP6TABLES_RESTORE" if family is Family.IPV6 else "BPFILTER_IPTABLES_RESTORE"
    default = "ip6tables-restore" if family is Family.IPV6 else "iptables-restore"
    return [os.environ.get(env, default), "-w"]


def iptables_save_command(family: Family) -> list[str]:
    """The iptables-save that pairs with `iptables_restore_command` (same variant)."""
    env = "BPFILTER_IP6TABLES_SAVE" if family is Family.IPV6 else "BPFILTER_IPTABLES_SAVE"
    default = "ip6tables-save" if family is Family.IPV6 else "iptables-save"
    return [os.environ.get(env, default)]


def _empty_table(name: str) -> Table:
    return Table(name, tuple(Chain(c, "ACCEPT") for c in BUILTIN_CHAINS[name]))


def netfilter_tables_text(family: Family, names: Sequence[str]) -> str:
    """The live netfilter tables `names` as iptables-save text (absent ones: empty)."""
    proc = subprocess.run(iptables_save_command(family), capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"read netfilter ({' '.join(iptables_save_command(family))}): "
                            f"{proc.stderr.strip()}")
    blocks: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("*"):
            cur = blocks.setdefault(line[1:].strip(), [line])
        elif cur is not None and not line.startswith("#"):
            cur.append(line)
            if line == "COMMIT":
                cur = None
    out = []
    for name in names:
        if name in blocks:
            out.append("\n".join(blocks[name]) + "\n")
        else:
            out.append(print_ruleset(Ruleset(family, (_empty_table(name),))))
    return "".join(out)


def _apply_netfilter(store: StateStore, ruleset: Ruleset, plan: Plan, old: LoadedState | None,
                     req: RestoreRequest, journal: Journal, checker: str | None = None
                     ) -> None:
    """Hand the netfilter tables to iptables-restore; empty the ones now in BPF.

    Only tables bpfilter itself put into netfilter are ever emptied. What they
    held before is kept in the journal first, so a later failure can put it back.
    """
    tables = list(plan.netfilter_tables)
    if checker is not None:  # per-packet hand-off: the chain starts with the checker
        tables = [handoff.with_checker(t, plan.handoff_chains, checker) if t.name == "filter"
                  else t for t in tables]
    previously = set(old.netfilter_tables) if old else set()
    before = {t.name: t for t in loaded_ruleset(old, ruleset.family).tables}
    # Unchanged tables that already are in netfilter are left alone (and keep counting).
    tables = [t for t in tables if t.name == "filter" or t.name not in previously
              or before.get(t.name) != t]
    in_nf = {t.name for t in plan.netfilter_tables}  # a table split by chain is in both
    tables += [_empty_table(t.name) for t in plan.bpf_tables
               if t.name in previously and t.name not in in_nf]
    if not tables:
        return
    journal.netfilter_backup = netfilter_tables_text(ruleset.family, [t.name for t in tables])
    store.save_journal(journal)
    _test_point("netfilter")
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


def current_ruleset(family: Family) -> Ruleset:
    """What is loaded in this namespace (empty when nothing is), read without the lock."""
    try:
        return loaded_ruleset(current_state(StateStore(family), discard=False), family)
    except OSError:
        return Ruleset(family=family)


def _recover_if_idle(store: StateStore) -> str | None:
    """Readers repair an interrupted restore too, unless a restore is running now."""
    if not store.journal_file.exists():
        return None
    try:
        with locked(store, 0.0):
            return recover(store)
    except LockBusy:
        return None


def save(family: Family, counters: bool = False, table: str | None = None) -> str:
    """What is loaded, as iptables-save prints it (policy counters always)."""
    store = StateStore(family)
    _recover_if_idle(store)
    state = current_state(store)
    ruleset = loaded_ruleset(state, family)
    if state is not None and state.programs:
        ruleset = with_counters(ruleset, read_counters(store, state))
    if table:
        ruleset = replace(ruleset, tables=tuple(t for t in ruleset.tables if t.name == table))
    return print_ruleset(ruleset, counters=counters)


def flush(family: Family, netfilter: bool = True) -> int:
    """Detach and unpin everything bpfilter loaded here; returns links removed.

    ``netfilter=False`` leaves the tables bpfilter handed to netfilter as they are
    (`bpfilter rollback` has just put the pre-migration ruleset there).
    """
    store = StateStore(family)
    with locked(store, None):
        recover(store)
        state = current_state(store)
        if state is None:
            return 0
        removed = _unpin(store, state)
        _unpin_checkers(store)
        ctenable.disable(family)
        if state.netfilter_tables and netfilter:
            empty = Ruleset(family, tuple(_empty_table(t) for t in state.netfilter_tables))
            subprocess.run(iptables_restore_command(family), input=print_ruleset(empty),
                           capture_output=True, text=True, check=False)
        store.clear()
        return removed


def status(family: Family) -> str:
    store = StateStore(family)
    recovered = _recover_if_idle(store)
    state = current_state(store)
    lines = [recovered] if recovered else []
    if state is None:
        return "\n".join([*lines, "nothing loaded"])
    lines.append(f"generation {state.generation}")
    devices = _all_interfaces() if state.iface_patterns else {}
    have = set()
    for p in state.programs:
        for lr in p.links:
            where = f"{lr.kind} {lr.hook}" + (f" on {lr.iface}" if lr.iface else "")
            alive = "attached" if store.pin_path(lr.pin).exists() else "MISSING"
            if lr.iface is not None and lr.ifindex is not None \
                    and devices.get(lr.iface) != lr.ifindex:
                alive = "GONE (the device was removed or re-created)"
            else:
                have.add(lr.iface)
            lines.append(f"{p.name}: {where} ({', '.join(p.chains)}) {alive}")
    for t in state.netfilter_tables:
        lines.append(f"table {t}: netfilter (iptables-restore)")
    if state.iface_patterns:
        lines.append(f"interfaces: {' '.join(state.iface_patterns)}")
        waiting = sorted(n for n in devices if n not in have and any(
            iface_matches(pt, n) for pt in state.iface_patterns))
        for name in waiting:
            lines.append(f"{name}: matches but has no filter yet (run `bpfilter attach-new`)")
    return "\n".join(lines)
