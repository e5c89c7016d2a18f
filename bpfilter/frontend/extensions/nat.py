"""NAT targets: DNAT, SNAT, MASQUERADE, REDIRECT (libxt_NAT.c) and NETMAP.

Values:
- ``to-destination`` / ``to-source``: ``NatRange`` (address range and/or port
  range, plus the DNAT port-shift base);
- ``to-ports`` (MASQUERADE, REDIRECT): ``NatRange`` without addresses;
- ``random`` / ``random-fully`` / ``persistent``: True;
- NETMAP ``to``: ``Address`` (network already masked, mask possibly non-contiguous).

Behaviour kept from iptables 1.8.9 and the kernel:
- ports need ``-p tcp|udp|sctp|dccp|icmp`` ("Need TCP, UDP, SCTP or DCCP ...");
- a port range accepts a service name only as its first port (``ssh``, not ``10-ssh``);
- ``lo-hi/base`` (shifted port map) keeps its base for DNAT (revision 2), is
  refused for REDIRECT, and for SNAT/MASQUERADE the kernel structure has no
  base, so 1.8.9 prints ``/0`` (we keep ``base=0``);
- DNAT and REDIRECT only in nat PREROUTING/OUTPUT, SNAT in nat INPUT/POSTROUTING,
  MASQUERADE in nat POSTROUTING, NETMAP in any nat chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import (
    INPUT,
    IPPROTO_DCCP,
    IPPROTO_ICMP,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    OUTPUT,
    POSTROUTING,
    PREROUTING,
    KernelPlaced,
    proto_number,
)
from bpfilter.frontend.extensions.types import UINT16_MAX, PortRange, service_to_port, strtoul
from bpfilter.frontend.netparse import inet_ntop, inet_pton, mask_to_cidr, parse_hostmask
from bpfilter.ir import Address, Family, IPAddress, Option

PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_DCCP, IPPROTO_ICMP})


@dataclass(frozen=True)
class NatRange:
    """What a NAT rule maps to (the kernel's ``nf_nat_range2``).

    ``min_addr``/``max_addr`` are None when no address is given (port-only
    mapping); ``ports`` is None when no port is given; ``base`` is the first
    port of a shifted port map (``lo-hi/base``), else None.
    """

    min_addr: IPAddress | None = None
    max_addr: IPAddress | None = None
    ports: PortRange | None = None
    base: int | None = None

    def text(self, family: Family, skip_colon: bool = False) -> str:
        """libxt_NAT's sprint_range (``skip_colon`` for ``--to-ports``)."""
        out = ""
        brackets = family is Family.IPV6 and self.ports is not None
        if self.min_addr is not None and self.max_addr is not None:
            out += "[" if brackets else ""
            out += inet_ntop(self.min_addr)
            if self.max_addr != self.min_addr:
                out += "-" + inet_ntop(self.max_addr)
            out += "]" if brackets else ""
        if self.ports is not None:
            out += f":{self.ports.lo}"
            if self.ports.hi != self.ports.lo:
                out += f"-{self.ports.hi}"
            if self.base is not None:
                out += f"/{self.base}"
        if skip_colon and out.startswith(":"):
            out = out[1:]
        return out


def _strtoui16(text: str) -> tuple[int, str] | None:
    """xtables_strtoui(arg, &end, ..., 0, UINT16_MAX): number and rest, or None."""
    res = strtoul(text)
    if res is None or res[0] > UINT16_MAX:
        return None
    return res


def _service(text: str) -> int | None:
    return service_to_port(text, None) if text else None


def parse_ports(arg: str, portok: bool) -> tuple[PortRange, int | None]:
    """libxt_NAT's parse_ports: ``p``, ``lo-hi`` or ``lo-hi/base``."""
    if not portok:
        raise ExtensionError("Need TCP, UDP, SCTP or DCCP with port specification")
    res = _strtoui16(arg)
    if res is None:
        port = _service(arg)
        if port is None:
            raise ExtensionError(f"Port `{arg}' not valid")
        return PortRange(port, port), None
    port, end = res
    if end == "":
        return PortRange(port, port), None
    if end[0] == ":":
        raise ExtensionError("Invalid port:port syntax - use dash")
    if end[0] != "-":
        raise ExtensionError(f"Garbage after port value: `{end}'")
    arg = end[1:]
    res = _strtoui16(arg)
    if res is None:
        raise ExtensionError(f"Port `{arg}' not valid")
    maxport, end = res
    if maxport < port:
        raise ExtensionError(f"Port range `{arg}' funky")
    if end == "":
        return PortRange(port, maxport), None
    if end[0] != "/":
        raise ExtensionError(f"Garbage after port range: `{end}'")
    arg = end[1:]
    res = strtoul(arg)
    if res is not None and 1 <= res[0] <= UINT16_MAX:  # 1.8.9 ignores what follows
        return PortRange(port, maxport), res[0]
    base = _service(arg)
    if base is None:
        raise ExtensionError(f"Port `{arg}' not valid")
    return PortRange(port, maxport), base


def parse_to(orig: str, portok: bool, family: Family) -> NatRange:
    """libxt_NAT's parse_to: ``[addr[-addr]][:port[-port[/base]]]`` (IPv6 in brackets)."""
    arg = orig
    bracket = arg.find("[")
    if bracket < 0:
        start = arg
        colon = arg.find(":")
        if colon >= 0 and ":" in arg[colon + 1 :]:
            colon = -1
        addr_part = start if colon < 0 else start[:colon]
        port_part = None if colon < 0 else arg[colon + 1 :]
        no_ip = colon in (0, 2)  # libxt_NAT: "starts with colon or [] colon"
    else:
        end = arg.find("]", bracket + 1)
        if end < 0 or family is Family.IPV4:
            raise ExtensionError("Invalid address format")
        addr_part = arg[bracket + 1 : end]
        colon = arg.find(":", end + 1)
        port_part = None if colon < 0 else arg[colon + 1 :]
        no_ip = colon in (0, 2)
    ports: PortRange | None = None
    base: int | None = None
    if port_part is not None:
        ports, base = parse_ports(port_part, portok)
        if no_ip:
            return NatRange(None, None, ports, base)
    lo_s, dash, hi_s = addr_part.partition("-")
    lo = inet_pton(lo_s, family)
    if lo is None:
        raise ExtensionError(f'Bad IP address "{lo_s}"')
    hi = lo
    if dash:
        got = inet_pton(hi_s, family)
        if got is None:
            raise ExtensionError(f'Bad IP address "{hi_s}"')
        hi = got
    return NatRange(lo, hi, ports, base)


def _portok(ctx: ParseContext) -> bool:
    return proto_number(ctx) in PORT_PROTOCOLS


def _parse_to(args: Sequence[str], ctx: ParseContext) -> NatRange:
    return parse_to(args[0], _portok(ctx), ctx.family)


def _parse_to_ports(args: Sequence[str], ctx: ParseContext) -> NatRange:
    ports, base = parse_ports(args[0], _portok(ctx))
    return NatRange(None, None, ports, base)


class _NatTarget(KernelPlaced):
    """Common save: the range option, then the flags in kernel order."""

    kind = "target"
    valid_tables = ("nat",)
    range_option: ClassVar[str] = ""
    # Where the kernel structure keeps the shifted-map base (DNAT revision 2 only).
    keeps_base: ClassVar[bool] = False
    rejects_base: ClassVar[bool] = False

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        rng = found.get(self.range_option)
        if rng is not None and rng.value.base is not None:
            if self.rejects_base:
                raise ExtensionError("Shifted portmap ranges not supported with this kernel")
            if not self.keeps_base:
                found[self.range_option] = Option(
                    rng.name, NatRange(rng.value.min_addr, rng.value.max_addr, rng.value.ports, 0)
                )
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts: list[str] = []
        for opt in options:
            if opt.name == self.range_option:
                text = opt.value.text(ctx.family, skip_colon=opt.name == "to-ports")
                if text:
                    parts.append(f"--{opt.name} {text}")
            else:
                parts.append(f"--{opt.name}")
        return " ".join(parts)


_RANDOM = OptionSpec("random")
_RANDOM_FULLY = OptionSpec("random-fully")
_PERSISTENT = OptionSpec("persistent")


@register
class DNAT(_NatTarget):
    """Destination NAT (nat PREROUTING/OUTPUT)."""

    name = "DNAT"
    valid_hooks = frozenset({PREROUTING, OUTPUT})
    range_option = "to-destination"
    keeps_base = True
    options = (OptionSpec("to-destination", _parse_to), _RANDOM, _PERSISTENT)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "to-destination")
        return super().complete(found, ctx)


@register
class SNAT(_NatTarget):
    """Source NAT (nat INPUT/POSTROUTING)."""

    name = "SNAT"
    valid_hooks = frozenset({INPUT, POSTROUTING})
    range_option = "to-source"
    options = (OptionSpec("to-source", _parse_to), _RANDOM, _RANDOM_FULLY, _PERSISTENT)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "to-source")
        return super().complete(found, ctx)


@register
class MASQUERADE(_NatTarget):
    """Source NAT to the outgoing interface's address (nat POSTROUTING)."""

    name = "MASQUERADE"
    valid_hooks = frozenset({POSTROUTING})
    range_option = "to-ports"
    options = (OptionSpec("to-ports", _parse_to_ports), _RANDOM, _RANDOM_FULLY)


@register
class REDIRECT(_NatTarget):
    """Destination NAT to the local machine (nat PREROUTING/OUTPUT)."""

    name = "REDIRECT"
    valid_hooks = frozenset({PREROUTING, OUTPUT})
    range_option = "to-ports"
    rejects_base = True
    options = (OptionSpec("to-ports", _parse_to_ports), _RANDOM)


def _parse_netmap(args: Sequence[str], ctx: ParseContext) -> Address:
    addr, mask = parse_hostmask(args[0], ctx.family, "NETMAP", "to")
    net = type(addr)(int(addr) & int(mask))
    return Address(net, mask)


@register
class NETMAP(KernelPlaced):
    """1:1 network mapping (any nat chain)."""

    name = "NETMAP"
    kind = "target"
    valid_tables = ("nat",)
    options = (OptionSpec("to", _parse_netmap),)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "to")
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for opt in options:
            a: Address = opt.value
            plen = mask_to_cidr(a.mask)
            suffix = str(plen) if plen is not None else inet_ntop(a.mask)
            parts.append(f"--to {inet_ntop(a.addr)}/{suffix}")
        return " ".join(parts)
