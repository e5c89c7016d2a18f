"""``-m set`` (libxt_set match rev 4) and ``-j SET`` (target rev 3): ipset lookups.

Values: ``SetRef(name, dirs)`` for ``match-set`` / ``add-set`` / ``del-set`` /
``map-set``: the ipset name and, per set dimension, "src" or "dst" (which
packet address/port feeds that dimension). Match extras: ``return-nomatch``
(True), ``update-counters`` / ``update-subcounters`` (only negated: skip the
update), ``packets-eq|lt|gt`` / ``bytes-eq|lt|gt`` (int; ``eq`` negatable).
Target extras: ``exist`` (True), ``timeout`` (int seconds), ``map-mark`` /
``map-prio`` / ``map-queue`` (True).

iptables also asks the kernel whether the set exists; a parser cannot, so a
missing set is only found when the ruleset is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import check_hooks_allowed, own_hooks
from bpfilter.frontend.extensions.types import UINT32_MAX, UINT64_MAX, try_number
from bpfilter.ir import Family, Option

IPSET_MAXNAMELEN = 32
IPSET_DIM_MAX = 6


@dataclass(frozen=True)
class SetRef:
    """An ipset by name and the direction of each of its dimensions."""

    name: str
    dirs: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} {','.join(self.dirs)}"


def _setref(args: Sequence[str], ctx: ParseContext) -> SetRef:
    name, flags = args[0], args[1]
    if flags[:1] in ("-", "!") or flags == "":
        raise ExtensionError("--match-set requires two args.")
    if len(name) > IPSET_MAXNAMELEN - 1:
        raise ExtensionError(f"setname `{name}' too long, max {IPSET_MAXNAMELEN - 1} characters.")
    parts = flags.split(",")
    if len(parts) > IPSET_DIM_MAX:
        raise ExtensionError(f"Can't be more src/dst options than {IPSET_DIM_MAX}.")
    dirs = []
    for p in parts:
        if p.startswith("src"):
            dirs.append("src")
        elif p.startswith("dst"):
            dirs.append("dst")
        else:
            raise ExtensionError(
                "You must spefify (the comma separated list of) 'src' or 'dst'."
            )
    return SetRef(name, tuple(dirs))


def _counter(args: Sequence[str], ctx: ParseContext) -> int:
    v = try_number(args[0], 0, UINT64_MAX)
    if v is None:
        raise ExtensionError(f"Cannot parse {args[0]} as a counter value")
    return v


def _timeout(args: Sequence[str], ctx: ParseContext) -> int:
    v = try_number(args[0], 0, UINT32_MAX - 1)
    if v is None:
        raise ExtensionError("Invalid value for option --timeout or out of range 0-4294967294.")
    return v


_COUNTERS = ("packets-eq", "packets-lt", "packets-gt", "bytes-eq", "bytes-lt", "bytes-gt")


@register
class SetMatch(Extension):
    """Packet address/port (per dimension) is a member of an ipset."""

    name = "set"
    kind = "match"
    options = (
        OptionSpec("match-set", _setref, invert=True, aliases=("set",), nargs=2),
        OptionSpec("return-nomatch"),
        OptionSpec("update-counters", invert=True),
        OptionSpec("update-subcounters", invert=True),
        *(OptionSpec(n, _counter, invert=n.endswith("-eq")) for n in _COUNTERS),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = [o.name for o in options]
        if "match-set" not in names:
            raise ExtensionError("You must specify `--match-set' with proper arguments")
        for kind in ("packets", "bytes"):
            if sum(n.startswith(kind + "-") for n in names) > 1:
                raise ExtensionError(f"only one of the --{kind}-[eq|lt|gt] is allowed")
        kept = [o for o in options
                if not (o.name in ("update-counters", "update-subcounters") and not o.negated)]
        return super().finalize(kept, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            neg = "! " if o.negated else ""
            if o.name == "match-set":
                parts.append(f"{neg}--match-set {o.value}")
            elif o.name in _COUNTERS:
                parts.append(f"{neg}--{o.name} {o.value}")
            else:
                parts.append(f"{neg}--{o.name}")
        return " ".join(parts)


@register
class SetTarget(Extension):
    """Add the packet to / delete it from an ipset, or map set data onto the skb."""

    name = "SET"
    kind = "target"
    options = (
        OptionSpec("add-set", _setref, nargs=2),
        OptionSpec("exist"),
        OptionSpec("timeout", _timeout),
        OptionSpec("del-set", _setref, nargs=2),
        OptionSpec("map-set", _setref, nargs=2),
        OptionSpec("map-mark"),
        OptionSpec("map-prio"),
        OptionSpec("map-queue"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = {o.name for o in options}
        if not names & {"add-set", "del-set", "map-set"}:
            raise ExtensionError(
                "You must specify either `--add-set' or `--del-set' or `--map-set'"
            )
        if "add-set" not in names:
            for n in ("exist", "timeout"):
                if n in names:
                    raise ExtensionError(f"Option `--{n}' can be used with `--add-set' only")
        maps = names & {"map-mark", "map-prio", "map-queue"}
        if "map-set" not in names and maps:
            raise ExtensionError(f"Option `--{min(maps)}' can be used with `--map-set' only")
        if "map-set" in names and not maps:
            raise ExtensionError(
                "You must specify flags `--map-mark' or `--map-prio` or `--map-queue'"
            )
        if "map-set" in names:
            if ctx.table != "mangle":
                raise ExtensionError("SET target: --map-set only usable from mangle table")
            if maps & {"map-prio", "map-queue"}:
                check_hooks_allowed("SET", "target", own_hooks(ctx),
                                    ("FORWARD", "OUTPUT", "POSTROUTING"), ctx.family)
        return super().finalize(options, ctx)

    def check_rule_hooks(self, options: Sequence[Option], table: str, hooks: Iterable[str],
                         family: Family = Family.IPV4) -> None:
        if any(o.name in ("map-prio", "map-queue") for o in options):
            check_hooks_allowed("SET", "target", hooks, ("FORWARD", "OUTPUT", "POSTROUTING"),
                                family)

    def format_value(self, opt: Option) -> str:
        return str(opt.value)
