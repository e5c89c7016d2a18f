"""Where a loaded ruleset lives between processes, per network namespace.

bpfilter leaves no process running: what a later `bpfilter-save`, `status` or
`flush` needs is kept in two places under one run directory (default
/run/bpfilter, or $BPFILTER_RUN_DIR so tests keep everything in their own
temporary directory):

  <run>/bpffs/                     a bpffs mount: pinned links and counter maps
      <netns>/<family>/links/...
      <netns>/<family>/maps/...
  <run>/state/<netns>/<family>.json   what was loaded: ruleset text, programs, pins
  <run>/state/<netns>/<family>.journal.json   only while a restore commits (see Journal)

/run is shared by `ip netns exec` (only /sys is remounted), so a bpffs mounted
there from the host mount namespace is seen by every later command. <netns> is
the inode of /proc/thread-self/ns/net, which names the network namespace. Inodes are
reused once a namespace is gone, so a state also records the namespace's
cookie (SO_NETNS_COOKIE, never reused while the machine runs): a state whose
cookie differs belongs to a dead namespace and is discarded, not trusted.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bpfilter.ir import Family
from bpfilter.loader.bpffs import ensure_bpffs, is_bpffs

DEFAULT_RUN_DIR = "/run/bpfilter"


def run_dir() -> Path:
    return Path(os.environ.get("BPFILTER_RUN_DIR", DEFAULT_RUN_DIR)).absolute()


def _mount_ns(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/mnt").st_ino


def _outer_mount_ns_pid() -> int | None:
    """Nearest ancestor in another mount namespace (the shell that ran `ip netns exec`)."""
    mine = _mount_ns("self")
    pid = os.getppid()
    while pid > 1:
        try:
            if _mount_ns(pid) != mine:
                return pid
            with open(f"/proc/{pid}/status") as fh:
                pid = next(int(line.split()[1]) for line in fh if line.startswith("PPid:"))
        except (OSError, StopIteration):
            return None
    return None


def shared_bpffs(path: Path) -> Path:
    """A bpffs at `path` that outlives this command; returns the path to pin through.

    `ip netns exec` gives each command a private copy of the mount table: a bpffs
    mounted there vanishes with the command. A bpffs already mounted before the
    command is shared and used as is; otherwise it is mounted in the mount
    namespace of the process that ran us and reached through /proc/PID/root.
    """
    path.mkdir(parents=True, exist_ok=True)
    if is_bpffs(path):
        return path
    outer = _outer_mount_ns_pid()
    if outer is None:
        ensure_bpffs(path)
        return path
    view = Path(f"/proc/{outer}/root") / path.relative_to("/")
    if not is_bpffs(view):
        proc = subprocess.run(["nsenter", "-t", str(outer), "-m", "--", "mount", "-t", "bpf",
                               "bpf", str(path)], capture_output=True, text=True)
        if proc.returncode != 0 or not is_bpffs(view):
            raise OSError(f"mount bpffs at {path} outside this mount namespace: "
                          f"{proc.stderr.strip() or 'not a bpffs after mount'}")
    return view


def netns_id() -> str:
    """The current network namespace's identity (inode of its nsfs file)."""
    return str(os.stat("/proc/thread-self/ns/net").st_ino)  # the calling thread's netns


SO_NETNS_COOKIE = 71  # include/uapi/asm-generic/socket.h, kernel >= 5.14


def netns_cookie() -> int:
    """The current network namespace's cookie (0 when the kernel has none)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8),
                                  "little")
    except OSError:
        return 0


def family_name(family: Family) -> str:
    return "ipv4" if family is Family.IPV4 else "ipv6"


@dataclass
class LinkRecord:
    """One attachment: where a program is attached and where its link is pinned."""

    kind: str  # "xdp" | "tc" | "nf"
    hook: str  # "ingress"/"egress" for xdp/tc, chain name for nf
    iface: str | None
    pin: str  # relative to StateStore.pin_dir
    ifindex: int | None = None  # xdp/tc: a device re-created under the same name differs


@dataclass
class ProgramRecord:
    """One loaded program and the counter layout of its "counters" map."""

    name: str
    flavor: str
    hook: str
    chains: list[str]
    counters_pin: str  # relative to StateStore.pin_dir
    counter_slots: list[tuple[str, int | None]]  # (chain, rule number or None = policy)
    links: list[LinkRecord] = field(default_factory=list)
    prog_pin: str = ""  # the program itself, so `attach-new` can attach it to new interfaces
    # lookup maps (lkN_nodes / lkN_rules) → pin: a re-restore rewrites them in place (H13)
    map_pins: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedState:
    """Everything bpfilter put into the kernel for one family in one netns."""

    family: int
    ruleset_text: str = ""  # canonical iptables-save text of what is loaded (no counters)
    programs: list[ProgramRecord] = field(default_factory=list)
    netfilter_tables: list[str] = field(default_factory=list)  # handed to iptables-restore
    generation: int = 0
    iface_patterns: list[str] = field(default_factory=list)  # xdp/tc: --iface, '+' = all
    netns_cookie: int = 0
    # one-rule changes written into the lookup maps since the programs were compiled, in
    # order: [chain, run first rule, run position, rule line] (pipeline._apply_in_place).
    # The maps were built from ruleset_text with these rules reverted; replaying them on
    # that rebuilt mirror gives exactly what the maps hold.
    inplace_log: list[list] = field(default_factory=list)

    @staticmethod
    def from_json(text: str) -> LoadedState:
        raw = json.loads(text)
        programs = []
        for p in raw.get("programs", []):
            links = [LinkRecord(**link) for link in p.pop("links", [])]
            p["counter_slots"] = [tuple(s) for s in p["counter_slots"]]
            programs.append(ProgramRecord(**p, links=links))
        raw["programs"] = programs
        return LoadedState(**raw)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


class StateStore:
    """Reads and writes the state of one family in the current network namespace."""

    def __init__(self, family: Family, root: Path | None = None) -> None:
        self.family = family
        self.root = root or run_dir()
        self.ns = netns_id()

    @functools.cached_property
    def pin_dir(self) -> Path:
        """This namespace's and family's directory in the shared bpffs (made on demand)."""
        return shared_bpffs(self.root / "bpffs") / self.ns / family_name(self.family)

    def pin_path(self, relative: str) -> Path:
        """Records keep pins relative to pin_dir: the path to reach it may differ per run."""
        return self.pin_dir / relative

    @property
    def state_file(self) -> Path:
        return self.root / "state" / self.ns / f"{family_name(self.family)}.json"

    def load(self) -> LoadedState | None:
        try:
            return LoadedState.from_json(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def save(self, state: LoadedState) -> None:
        """Write atomically: a reader sees the old or the new state, never half."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.state_file)

    def clear(self) -> None:
        self.state_file.unlink(missing_ok=True)

    @property
    def journal_file(self) -> Path:
        return self.state_file.with_suffix(".journal.json")

    def save_journal(self, journal: Journal) -> None:
        """Written before each kernel change of a commit (atomically, like the state)."""
        self.journal_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.journal_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(journal), indent=1))
        os.replace(tmp, self.journal_file)

    def load_journal(self) -> Journal | None:
        try:
            raw = json.loads(self.journal_file.read_text())
        except FileNotFoundError:
            return None
        raw["updated"] = [tuple(u) for u in raw["updated"]]
        return Journal(**raw)

    def clear_journal(self) -> None:
        self.journal_file.unlink(missing_ok=True)


@dataclass
class Journal:
    """What a restore changes in the kernel, written before it changes it.

    Why: a restore killed in the middle of its commit (SIGKILL, power loss of
    the process) must not leave half a ruleset. The next bpfilter command finds
    the journal and either finishes (the new state was saved: the commit point)
    or undoes everything listed here, so the previous ruleset is back in force.
    """

    generation: int  # the generation being committed
    old_state: str | None  # JSON of the state before, None when nothing was loaded
    updated: list[tuple[str, str]] = field(default_factory=list)  # (link pin, old prog pin)
    created: list[str] = field(default_factory=list)  # link pins this restore made
    new_pins: list[str] = field(default_factory=list)  # map/program pins this restore made
    netfilter_backup: str | None = None  # iptables-save text to put back on rollback
    # (map pin, key hex, old value hex): map elements an in-place update rewrites (H13)
    map_backups: list[tuple[str, str, str]] = field(default_factory=list)
