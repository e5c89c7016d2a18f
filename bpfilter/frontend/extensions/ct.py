"""Conntrack setup targets of the raw table: CT and its alias NOTRACK (libxt_CT.c).

Values:
- ``notrack``: True (the packet gets the untracked state);
- ``helper`` / ``timeout``: str (name of a kernel helper / cttimeout policy);
- ``ctevents`` / ``expevents``: frozenset[str] of event names (printed in
  the kernel's bit order);
- ``zone``: ``CtZone`` (zone id or "from the packet mark", and direction);
  ``--zone``, ``--zone-orig``, ``--zone-reply`` all fold into one ``zone``
  option, as in the kernel structure (flags OR-ed, the last id wins).

Kernel checks kept: raw table only; unless ``--notrack`` is given (then the
kernel sets nothing else up), a helper or timeout needs ``-p`` (not negated)
and a helper must be one the kernel has for that protocol and family.
A zone id 0 without ``mark`` is the default and, like 1.8.9, is not printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    KernelPlaced,
    family_prefix,
)
from bpfilter.frontend.extensions.types import UINT16_MAX, try_number
from bpfilter.ir import Family, Option

CT_EVENTS = (
    "new", "related", "destroy", "reply", "assured", "protoinfo",
    "helper", "mark", "natseqinfo", "secmark",
)
EXP_EVENTS = ("new",)

# Helpers the kernel registers: name -> (protocols, families).
_BOTH = frozenset({Family.IPV4, Family.IPV6})
_V4 = frozenset({Family.IPV4})
KERNEL_HELPERS: dict[str, tuple[frozenset[int], frozenset[Family]]] = {
    "ftp": (frozenset({IPPROTO_TCP}), _BOTH),
    "tftp": (frozenset({IPPROTO_UDP}), _BOTH),
    "irc": (frozenset({IPPROTO_TCP}), _V4),
    "sip": (frozenset({IPPROTO_TCP, IPPROTO_UDP}), _BOTH),
    "amanda": (frozenset({IPPROTO_UDP}), _BOTH),
    "sane": (frozenset({IPPROTO_TCP}), _BOTH),
    "pptp": (frozenset({IPPROTO_TCP}), _V4),
    "netbios-ns": (frozenset({IPPROTO_UDP}), _V4),
    "snmp": (frozenset({IPPROTO_UDP}), _V4),
    "snmp_trap": (frozenset({IPPROTO_UDP}), _V4),
    "RAS": (frozenset({IPPROTO_UDP}), _BOTH),
    "Q.931": (frozenset({IPPROTO_TCP}), _BOTH),
}


@dataclass(frozen=True)
class CtZone:
    """A conntrack zone: a fixed id, or the packet's mark; for both or one direction."""

    zone: int = 0
    from_mark: bool = False
    direction: Literal["both", "orig", "reply"] = "both"

    def text(self) -> str:
        suffix = {"both": "", "orig": "-orig", "reply": "-reply"}[self.direction]
        return f"--zone{suffix} " + ("mark" if self.from_mark else str(self.zone))


def _events(table: tuple[str, ...]):
    def parse(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
        names = args[0].split(",")
        for n in names:
            if n not in table:
                raise ExtensionError(f'Unknown event type "{n}"')
        return frozenset(names)

    return parse


def _zone(direction: Literal["both", "orig", "reply"]):
    def parse(args: Sequence[str], ctx: ParseContext) -> CtZone:
        text = args[0]
        if text.lower() == "mark":
            return CtZone(0, True, direction)
        v = try_number(text, 0, UINT16_MAX)
        if v is None:
            raise ExtensionError(f"Cannot parse {text} as a zone ID")
        return CtZone(v, False, direction)

    return parse


def _string(args: Sequence[str], ctx: ParseContext) -> str:
    return args[0]


@register
class CT(KernelPlaced):
    """Sets up the connection tracking of a packet before conntrack sees it."""

    name = "CT"
    kind = "target"
    valid_tables = ("raw",)
    options = (
        OptionSpec("notrack"),
        OptionSpec("helper", _string),
        OptionSpec("timeout", _string),
        OptionSpec("ctevents", _events(CT_EVENTS)),
        OptionSpec("expevents", _events(EXP_EVENTS)),
        OptionSpec("zone", _zone("both")),
        OptionSpec("zone-orig", _zone("orig")),
        OptionSpec("zone-reply", _zone("reply")),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        # The three zone options share the kernel's zone field and flags.
        zones = [found.pop(n) for n in ("zone", "zone-orig", "zone-reply") if n in found]
        if zones:
            dirs = {z.value.direction for z in zones}
            orig = "orig" in dirs
            reply = "reply" in dirs
            direction = "orig" if orig and not reply else "reply" if reply and not orig else "both"
            last = zones[-1].value
            zone = CtZone(last.zone, any(z.value.from_mark for z in zones), direction)
            if zone.from_mark or zone.zone:
                found["zone"] = Option("zone", zone)
        if "notrack" not in found:  # the kernel sets up nothing else for untracked packets
            for name in ("helper", "timeout"):
                if name in found:
                    self._need_protocol(ctx, name)
            helper = found.get("helper")
            if helper is not None:
                self._check_helper(helper.value, ctx)
        return self.ordered(found.values())

    def _need_protocol(self, ctx: ParseContext, what: str) -> None:
        p = ctx.protocol
        if p is None or p.negated or p.value == 0:
            raise ExtensionError(
                f"CT --{what}: You must specify a L4 protocol and not use inversions on it"
            )

    def _check_helper(self, name: str, ctx: ParseContext) -> None:
        known = KERNEL_HELPERS.get(name)
        proto = int(ctx.protocol.value) if ctx.protocol is not None else 0
        if known is None or proto not in known[0] or ctx.family not in known[1]:
            raise ExtensionError(
                f'{family_prefix(ctx.family)}_tables: CT: cannot find helper "{name}" '
                f"for protocol {proto}"
            )

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts: list[str] = []
        for opt in options:
            if opt.name == "notrack":
                parts.append("--notrack")
            elif opt.name in ("helper", "timeout"):
                parts.append(f"--{opt.name} {opt.value}")
            elif opt.name in ("ctevents", "expevents"):
                table = CT_EVENTS if opt.name == "ctevents" else EXP_EVENTS
                parts.append(f"--{opt.name} " + ",".join(e for e in table if e in opt.value))
            elif opt.name == "zone":
                parts.append(opt.value.text())
        return " ".join(parts)


@register
class NOTRACK(KernelPlaced):
    """``-j NOTRACK``: the same as ``-j CT --notrack``, printed under its own name."""

    name = "NOTRACK"
    kind = "target"
    valid_tables = ("raw",)
    options = ()

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return ""
