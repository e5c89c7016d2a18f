"""``-m tcpmss`` and ``-j TCPMSS`` (libxt_tcpmss, libxt_TCPMSS): the TCP MSS option.

Match value: ``mss``: ``NumRange`` of the SYN's MSS option, negatable
(needs ``-p tcp``; lo > hi is refused as "invalid range given").
Target value: ``set-mss`` (int) or ``clamp-mss-to-pmtu`` (True: path MTU
minus headers). Kernel: ``-p tcp`` and a tcp match that requires SYN in the
same rule; clamping only from FORWARD/OUTPUT/POSTROUTING.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import (
    IPPROTO_TCP,
    check_hooks_allowed,
    own_hooks,
    require_protocol,
)
from bpfilter.frontend.extensions.types import (
    UINT16_MAX,
    NumRange,
    ValueMask,
    parse_mint,
    parse_uint,
)
from bpfilter.ir import Family, Option

TCP_SYN = 0x02
CLAMP_HOOKS = ("FORWARD", "OUTPUT", "POSTROUTING")


def _mss_range(args: Sequence[str], ctx: ParseContext) -> NumRange:
    vals = parse_mint(args[0], UINT16_MAX, "tcpmss", "mss")
    r = NumRange(vals[0], vals[-1])
    if r.lo > r.hi:
        raise ExtensionError("tcpmss: invalid range given")
    return r


@register
class TcpmssMatch(Extension):
    """MSS option of TCP SYN packets within a range."""

    name = "tcpmss"
    kind = "match"
    options = (OptionSpec("mss", _mss_range, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('tcpmss: option "--mss" must be specified')
        require_protocol(ctx, IPPROTO_TCP, "tcpmss match")
        return super().finalize(options, ctx)


def _set_mss(args: Sequence[str], ctx: ParseContext) -> int:
    """0 to 65535 minus the minimal IP header (20 for IPv4, 40 for IPv6)."""
    hdr = 40 if ctx.family is Family.IPV6 else 20
    return parse_uint(args[0], UINT16_MAX - hdr, "TCPMSS", "set-mss")


def has_syn_match(ctx: ParseContext) -> bool:
    """The kernel's find_syn_match: a tcp match whose --tcp-flags compare includes SYN."""
    for m in ctx.matches:
        if m.module != "tcp":
            continue
        flags = m.get("tcp-flags")
        if flags is None:
            flags = m.get("syn")
        if flags is None or flags.negated:
            continue
        value = flags.value
        if isinstance(value, ValueMask) and value.value & TCP_SYN:
            return True
        if value is True:
            return True
    return False


@register
class TcpmssTarget(Extension):
    """Rewrite the MSS option of TCP SYN packets."""

    name = "TCPMSS"
    kind = "target"
    options = (OptionSpec("set-mss", _set_mss), OptionSpec("clamp-mss-to-pmtu"))

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError("TCPMSS target: At least one parameter is required")
        # Both given: the C parser keeps the last one written into info->mss.
        opt = options[-1]
        require_protocol(ctx, IPPROTO_TCP, "TCPMSS target")
        if opt.name == "clamp-mss-to-pmtu":
            check_hooks_allowed("TCPMSS", "target", own_hooks(ctx), CLAMP_HOOKS, ctx.family)
        if not has_syn_match(ctx):
            raise ExtensionError("TCPMSS target: Only works on TCP SYN packets "
                                 "(needs e.g. --tcp-flags SYN,RST SYN) (Invalid argument)")
        return (opt,)

    def check_rule_hooks(self, options: Sequence[Option], table: str, hooks: Iterable[str],
                         family: Family = Family.IPV4) -> None:
        if any(o.name == "clamp-mss-to-pmtu" for o in options):
            check_hooks_allowed("TCPMSS", "target", hooks, CLAMP_HOOKS, family)
