"""TPROXY target (libxt_TPROXY.c, revision 1): transparent proxy redirection.

Values: ``on-port`` int (0: keep the original port), ``on-ip`` an address of
the rule's family, ``tproxy-mark`` a ``ValueMask`` (``mark = (mark & ~mask) ^
value``). ``finalize`` fills the defaults (0.0.0.0 or ::, 0x0/0x0) because
iptables-save always prints all three.

Kernel: mangle PREROUTING only, and the rule must be ``-p tcp`` or ``-p udp``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    PREROUTING,
    KernelPlaced,
)
from bpfilter.frontend.extensions.types import ValueMask, parse_value_mask, port_or_service
from bpfilter.frontend.netparse import inet_ntop, parse_host
from bpfilter.ir import Family, IPAddress, Option


def _port(args: Sequence[str], ctx: ParseContext) -> int:
    p = port_or_service(args[0])
    if p is None:
        raise ExtensionError(f'Port "{args[0]}" does not resolve to anything.')
    return p


def _ip(args: Sequence[str], ctx: ParseContext) -> IPAddress:
    addr = parse_host(args[0], ctx.family)
    if addr is None:
        raise ExtensionError(f"getaddrinfo: Name or service not known ({args[0]})")
    return addr


def _mark(args: Sequence[str], ctx: ParseContext) -> ValueMask:
    return parse_value_mask(args[0], what="mark")


@register
class TPROXY(KernelPlaced):
    name = "TPROXY"
    kind = "target"
    valid_tables = ("mangle",)
    valid_hooks = frozenset({PREROUTING})
    valid_protocols = frozenset({IPPROTO_TCP, IPPROTO_UDP})
    options = (
        OptionSpec("on-port", _port),
        OptionSpec("on-ip", _ip),
        OptionSpec("tproxy-mark", _mark),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "on-port")
        if "on-ip" not in found:
            zero = ipaddress.IPv6Address(0) if ctx.family is Family.IPV6 else (
                ipaddress.IPv4Address(0)
            )
            found["on-ip"] = Option("on-ip", zero)
        found.setdefault("tproxy-mark", Option("tproxy-mark", ValueMask(0, 0)))
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            if o.name == "on-port":
                parts.append(f"--on-port {o.value}")
            elif o.name == "on-ip":
                parts.append(f"--on-ip {inet_ntop(o.value)}")
            else:
                parts.append(f"--tproxy-mark 0x{o.value.value:x}/0x{o.value.mask:x}")
        return " ".join(parts)
