"""Registry of match compilers, keyed by the match module name (`-m NAME`).

Why a registry: the set of supported matches grows one module at a time; codegen and
`unsupported_reason` look matches up here instead of in an if-chain.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Protocol

from llvmlite import ir

from bpfilter.backend.gen import Gen
from bpfilter.backend.packet import PacketView
from bpfilter.ir import Match, Rule


@dataclass
class RuleCtx:
    """Where a matcher emits: `fail` when the rule does not match, `hotdrop` when
    iptables would drop the packet outright (truncated header)."""

    gen: Gen
    pkt: PacketView
    rule: Rule
    fail: ir.Block
    hotdrop: ir.Block

    def require(self, cond: ir.Value) -> None:
        self.gen.require(cond, self.fail)


class MatchCompiler(Protocol):
    """Compiles one match module."""

    module: str

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        """Why this match cannot be compiled, or None."""

    def l4_bytes(self, match: Match) -> int:
        """How many bytes of the L4 header the emitted code may read."""

    def emit(self, rc: RuleCtx, match: Match) -> None:
        """Emit code continuing in the current block when the match matches."""


_REGISTRY: dict[str, MatchCompiler] = {}
_loaded = False


def register(cls: type) -> type:
    """Class decorator: make a match compiler findable by its module name."""
    inst = cls()
    _REGISTRY[inst.module] = inst
    return cls


def matcher(module: str) -> MatchCompiler | None:
    _load_all()
    return _REGISTRY.get(module)


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "generic":
            importlib.import_module(f"{__name__}.{info.name}")
