"""Where a loaded ruleset lives between processes, per network namespace.

bpfilter leaves no process running: what a later `bpfilter-save`, `status` or
`flush` needs is kept in two places under one run directory (default
/run/bpfilter, or $BPFILTER_RUN_DIR so tests keep everything in their own
temporary directory):

  <run>/bpffs/                     a bpffs mount: pinned links and counter maps
      <netns>/<family>/links/...
      <netns>/<family>/maps/...
  <run>/state/<netns>/<family>.json   what was loaded: ruleset text, programs, pins

/run is shared by `ip netns exec` (only /sys is remounted), so a bpffs mounted
there from the host mount namespace is seen by every later command. <netns> is
the inode of /proc/self/ns/net, which names the network namespace.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bpfilter.ir import Family

DEFAULT_RUN_DIR = "/run/bpfilter"


def run_dir() -> Path:
    return Path(os.environ.get("BPFILTER_RUN_DIR", DEFAULT_RUN_DIR))


def netns_id() -> str:
    """The current network namespace's identity (inode of its nsfs file)."""
    return str(os.stat("/proc/self/ns/net").st_ino)


def family_name(family: Family) -> str:
    return "ipv4" if family is Family.IPV4 else "ipv6"


@dataclass
class LinkRecord:
    """One attachment: where a program is attached and where its link is pinned."""

    kind: str  # "xdp" | "tc" | "nf"
    hook: str  # "ingress"/"egress" for xdp/tc, chain name for nf
    iface: str | None
    pin: str


@dataclass
class ProgramRecord:
    """One loaded program and the counter layout of its "counters" map."""

    name: str
    flavor: str
    hook: str
    chains: list[str]
    counters_pin: str
    counter_slots: list[tuple[str, int | None]]  # (chain, rule number or None = policy)
    links: list[LinkRecord] = field(default_factory=list)


@dataclass
class LoadedState:
    """Everything bpfilter put into the kernel for one family in one netns."""

    family: int
    ruleset_text: str = ""  # canonical iptables-save text of what is loaded (no counters)
    programs: list[ProgramRecord] = field(default_factory=list)
    netfilter_tables: list[str] = field(default_factory=list)  # handed to iptables-restore
    generation: int = 0

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

    @property
    def bpffs_root(self) -> Path:
        return self.root / "bpffs"

    @property
    def pin_dir(self) -> Path:
        return self.bpffs_root / self.ns / family_name(self.family)

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
