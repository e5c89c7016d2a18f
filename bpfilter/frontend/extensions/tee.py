"""TEE target (libxt_TEE.c): clones the packet towards a gateway.

Values: ``gateway`` is an IP address of the rule's family (mandatory, not
0.0.0.0 / :: — the kernel refuses it); ``oif`` the interface name, cut to 15
characters like the kernel structure. Host names are not resolved.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced, family_prefix
from bpfilter.frontend.netparse import inet_ntop, parse_host
from bpfilter.ir import IPAddress, Option

IFNAMSIZ = 16


def _gateway(args: Sequence[str], ctx: ParseContext) -> IPAddress:
    addr = parse_host(args[0], ctx.family)
    if addr is None:
        raise ExtensionError(f"getaddrinfo: Name or service not known ({args[0]})")
    return addr


def _oif(args: Sequence[str], ctx: ParseContext) -> str:
    return args[0][: IFNAMSIZ - 1]


@register
class TEE(KernelPlaced):
    name = "TEE"
    kind = "target"
    options = (OptionSpec("gateway", _gateway), OptionSpec("oif", _oif))

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        gw = self.must(found, "gateway")
        if int(gw.value) == 0:
            raise ExtensionError(
                f"{family_prefix(ctx.family)}_tables: TEE target: gateway may not be "
                "the unspecified address"
            )
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            if o.name == "gateway":
                parts.append(f"--gateway {inet_ntop(o.value)}")
            elif o.value:
                parts.append(f"--oif {o.value}")
        return " ".join(parts)
