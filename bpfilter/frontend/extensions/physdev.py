"""``-m physdev`` (xt_physdev): bridge ports of bridged traffic.

Values: ``physdev-in``/``physdev-out`` are interface names (str, at most 15
characters, ``+`` suffix = prefix match); ``physdev-is-in``,
``physdev-is-out``, ``physdev-is-bridged`` flags. Every option can be
negated; at least one is needed. 1.8.9 prints names unquoted. The kernel
refuses ``--physdev-out``/``--physdev-is-out`` from OUTPUT unless
``--physdev-is-bridged`` (not negated) is given too.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import (
    FORWARD,
    INPUT,
    POSTROUTING,
    PREROUTING,
    check_hooks_allowed,
    own_hooks,
)
from bpfilter.ir import Option

IFNAMSIZ = 16


def _iface(args: Sequence[str], ctx: ParseContext) -> str:
    name = args[0]
    if len(name) >= IFNAMSIZ:
        raise ExtensionError(
            f"interface name `{name}' must be shorter than IFNAMSIZ ({IFNAMSIZ - 1})"
        )
    return name


@register
class PhysdevMatch(Extension):
    """Bridge port match (needs br_netfilter: only bridged packets have one)."""

    name = "physdev"
    kind = "match"
    options = (
        OptionSpec("physdev-is-in", invert=True),
        OptionSpec("physdev-in", _iface, invert=True),
        OptionSpec("physdev-is-out", invert=True),
        OptionSpec("physdev-out", _iface, invert=True),
        OptionSpec("physdev-is-bridged", invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError("PHYSDEV: no physdev option specified")
        found = {o.name: o for o in options}
        bridged = found.get("physdev-is-bridged")
        if (found.keys() & {"physdev-out", "physdev-is-out"}
                and (bridged is None or bridged.negated)):
            # xt_physdev checkentry: the output port of locally generated packets is unknown.
            check_hooks_allowed("physdev (--physdev-out without --physdev-is-bridged)", "match",
                                own_hooks(ctx), (PREROUTING, INPUT, FORWARD, POSTROUTING),
                                ctx.family)
        return super().finalize(options, ctx)
