"""``-m recent`` (libxt_recent revision 1, kernel xt_recent): named address lists.

Values after finalize, in save order (all present unless said otherwise):
- the command, exactly one of ``set`` / ``rcheck`` / ``update`` / ``remove``
  (True; ``negated`` inverts the whole match, printed as a leading ``!``);
- ``seconds``, ``hitcount``: int (0 = not used, then not printed);
- ``reap``, ``rttl``: present (True) only when given;
- ``name``: str (default "DEFAULT");
- ``mask``: the address mask applied before lookup (IPv4Address/IPv6Address);
- ``side``: "rsource" or "rdest" (which address is recorded / looked up).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint
from bpfilter.frontend.netparse import inet_ntop, parse_host
from bpfilter.ir import Family, IPAddress, Option

COMMANDS = ("set", "rcheck", "update", "remove")
XT_RECENT_NAME_LEN = 200
MAX_HITCOUNT = 65535


def _seconds(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "recent", "seconds", lo=1)


def _hitcount(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_uint(args[0], UINT32_MAX, "recent", "hitcount")


def _name(args: Sequence[str], ctx: ParseContext) -> str:
    if len(args[0].encode()) > XT_RECENT_NAME_LEN - 1:
        raise ExtensionError('recent: option "--name" must be no more than 199 characters')
    return args[0]


def _mask(args: Sequence[str], ctx: ParseContext) -> IPAddress:
    addr = parse_host(args[0], ctx.family)
    if addr is None:
        raise ExtensionError("getaddrinfo: Name or service not known")
    return addr


def full_mask(family: Family) -> IPAddress:
    if family is Family.IPV6:
        return ipaddress.IPv6Address((1 << 128) - 1)
    return ipaddress.IPv4Address((1 << 32) - 1)


@register
class RecentMatch(Extension):
    """Record / look up the packet's source or destination in a named list."""

    name = "recent"
    kind = "match"
    options = (
        *(OptionSpec(c, invert=True) for c in COMMANDS),
        OptionSpec("seconds", _seconds),
        OptionSpec("reap"),
        OptionSpec("hitcount", _hitcount),
        OptionSpec("rttl"),
        OptionSpec("name", _name),
        OptionSpec("mask", _mask),
        OptionSpec("rsource"),
        OptionSpec("rdest"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        seen: list[str] = []
        side = "rsource"
        for o in options:  # xtables' .excl is checked against options seen so far
            if o.name in COMMANDS:
                prev = [c for c in seen if c in COMMANDS]
                if prev:
                    raise ExtensionError(f'recent: option "--{o.name}" cannot be used together '
                                         f'with "--{prev[0]}".')
            if o.name == "rttl" and ({"set", "remove"} & set(seen)):
                other = "set" if "set" in seen else "remove"
                raise ExtensionError(
                    f'recent: option "--rttl" cannot be used together with "--{other}".')
            if o.name in ("rsource", "rdest"):
                side = o.name
            seen.append(o.name)
        found = {o.name: o for o in options}
        cmd = next((found[c] for c in COMMANDS if c in found), None)
        if cmd is None:
            raise ExtensionError("recent: you must specify one of `--set', `--rcheck' "
                                 "`--update' or `--remove'")
        if "reap" in found and "seconds" not in found:
            raise ExtensionError('recent: option "--reap" also requires "--seconds".')
        seconds = found["seconds"].value if "seconds" in found else 0
        hitcount = found["hitcount"].value if "hitcount" in found else 0
        name = found["name"].value if "name" in found else "DEFAULT"
        # Kernel recent_mt_check.
        if cmd.name in ("set", "remove") and (seconds or hitcount or "reap" in found
                                                 or "rttl" in found):
            raise ExtensionError("recent: --set/--remove take no --seconds, --hitcount, "
                                 "--reap or --rttl (Invalid argument)")
        if hitcount > MAX_HITCOUNT:
            raise ExtensionError(f"recent: hitcount ({hitcount}) is larger than allowed "
                                 f"maximum ({MAX_HITCOUNT})")
        if not name or "/" in name:
            raise ExtensionError(f"recent: invalid list name {name!r} (Invalid argument)")
        out = [cmd, Option("seconds", seconds)]
        if "reap" in found:
            out.append(Option("reap", True))
        out.append(Option("hitcount", hitcount))
        if "rttl" in found:
            out.append(Option("rttl", True))
        out += [
            Option("name", name),
            Option("mask", found["mask"].value if "mask" in found else full_mask(ctx.family)),
            Option("side", side),
        ]
        return tuple(out)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts: list[str] = []
        for o in options:
            if o.name in COMMANDS:
                parts.append(("! " if o.negated else "") + f"--{o.name}")
            elif o.name in ("seconds", "hitcount"):
                if o.value:
                    parts.append(f"--{o.name} {o.value}")
            elif o.name in ("reap", "rttl"):
                parts.append(f"--{o.name}")
            elif o.name == "name":
                parts.append(f"--name {o.value}")
            elif o.name == "mask":
                parts.append(f"--mask {inet_ntop(o.value)}")
            elif o.name == "side":
                parts.append(f"--{o.value}")
        return " ".join(parts)
