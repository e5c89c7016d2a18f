"""``-m ipvs`` (xt_ipvs): properties of the IPVS connection a packet belongs to.

Values: ``ipvs`` flag (packet is IPVS traffic; implied by every other option,
so it is kept only when alone or negated); ``vproto`` int (IP protocol);
``vaddr`` ``HostMask`` (virtual address, printed as given); ``vport`` and
``vportctl`` ints; ``vdir`` "ORIGINAL" or "REPLY"; ``vmethod`` "GATE",
"IPIP" or "MASQ". All but ``vdir`` can be negated; ``! --ipvs`` cannot be
combined with other options. (The xt_ipvs kernel module is not built into
every kernel; the one on our test machines refuses the rule.)
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
from bpfilter.frontend.extensions.types import getportbyname
from bpfilter.frontend.netparse import parse_hostmask_plen, parse_protocol
from bpfilter.ir import Option


def _port(opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        p = getportbyname(args[0])
        if p is None:
            raise ExtensionError(f'Port "{args[0]}" does not resolve to anything.')
        return p

    return parse


def _choice(opt: str, choices: tuple[str, ...]):
    def parse(args: Sequence[str], ctx: ParseContext) -> str:
        up = args[0].upper()
        if up not in choices:
            raise ExtensionError(f'ipvs: Bad value for "--{opt}" option: "{args[0]}"')
        return up

    return parse


@register
class IpvsMatch(Extension):
    """IPVS connection match."""

    name = "ipvs"
    kind = "match"
    options = (
        OptionSpec("ipvs", invert=True),
        OptionSpec("vproto", lambda a, c: parse_protocol(a[0]), invert=True),
        OptionSpec("vaddr", lambda a, c: parse_hostmask_plen(a[0], c.family, "ipvs"), invert=True),
        OptionSpec("vport", _port("vport"), invert=True),
        OptionSpec("vdir", _choice("vdir", ("ORIGINAL", "REPLY"))),
        OptionSpec("vmethod", _choice("vmethod", ("GATE", "IPIP", "MASQ")), invert=True),
        OptionSpec("vportctl", _port("vportctl"), invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError("IPVS: At least one option is required")
        others = [o for o in options if o.name != "ipvs"]
        ipvs = next((o for o in options if o.name == "ipvs"), None)
        if others and ipvs is not None:
            if ipvs.negated:
                raise ExtensionError("! --ipvs cannot be together with other options")
            options = others
        return super().finalize(options, ctx)
