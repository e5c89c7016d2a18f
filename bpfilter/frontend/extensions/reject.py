"""``-j REJECT`` (libipt_REJECT / libip6t_REJECT): drop and answer with an error.

Value: ``reject-with``: the canonical name of the answer (IPv4
``icmp-port-unreachable`` ... ``tcp-reset``; IPv6 ``icmp6-port-unreachable`` ...
``tcp-reset``), always present (default: port unreachable). Names may be
abbreviated or given by alias, as iptables allows.

Kernel: filter table only, INPUT/FORWARD/OUTPUT; ``tcp-reset`` needs ``-p tcp``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import (
    IPPROTO_TCP,
    KernelPlaced,
    require_protocol,
)
from bpfilter.ir import Family, Option

# (name, alias) in the C table order: the first entry an abbreviation fits wins.
REJECT4 = (
    ("icmp-net-unreachable", "net-unreach"),
    ("icmp-host-unreachable", "host-unreach"),
    ("icmp-proto-unreachable", "proto-unreach"),
    ("icmp-port-unreachable", "port-unreach"),
    ("icmp-net-prohibited", "net-prohib"),
    ("icmp-host-prohibited", "host-prohib"),
    ("tcp-reset", "tcp-rst"),
    ("icmp-admin-prohibited", "admin-prohib"),
)
REJECT6 = (
    ("icmp6-no-route", "no-route"),
    ("icmp6-adm-prohibited", "adm-prohibited"),
    ("icmp6-addr-unreachable", "addr-unreach"),
    ("icmp6-port-unreachable", "port-unreach"),
    ("tcp-reset", "tcp-reset"),
    ("icmp6-policy-fail", "policy-fail"),
    ("icmp6-reject-route", "reject-route"),
)
HOOKS = ("INPUT", "FORWARD", "OUTPUT")


def _with(args: Sequence[str], ctx: ParseContext) -> str:
    arg = args[0].lower()
    table = REJECT6 if ctx.family is Family.IPV6 else REJECT4
    for name, alias in table:
        if name.startswith(arg) or alias.startswith(arg):
            return name
    raise ExtensionError(f'unknown reject type "{args[0]}"')


@register
class RejectTarget(KernelPlaced):
    """Refuse the packet with an ICMP(v6) error or a TCP reset."""

    name = "REJECT"
    kind = "target"
    valid_tables = ("filter",)
    valid_hooks = frozenset(HOOKS)
    options = (OptionSpec("reject-with", _with),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        default = "icmp6-port-unreachable" if ctx.family is Family.IPV6 \
            else "icmp-port-unreachable"
        opt = options[-1] if options else Option("reject-with", default)
        if opt.value == "tcp-reset":
            require_protocol(ctx, IPPROTO_TCP, "REJECT target: TCP_RESET invalid for non-tcp")
        self.check_placement(ctx)
        return (opt,)
