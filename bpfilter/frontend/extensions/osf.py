"""``-m osf`` (xt_osf): passive OS fingerprinting of TCP SYNs.

Values: ``genre`` str (cut to 31 bytes like 1.8.9; ``!`` inverts), ``ttl`` int
0-2 (0: TTL must be equal/less with a route check, 1: less or equal,
2: any), ``log`` int 0-2. Needs ``-p tcp`` and fingerprints loaded into
the kernel (nfnl_osf); allowed in PREROUTING, INPUT and FORWARD.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.placement import (
    FORWARD,
    INPUT,
    IPPROTO_TCP,
    PREROUTING,
    KernelPlaced,
    require_protocol,
)
from bpfilter.frontend.extensions.types import parse_uint, put_string
from bpfilter.ir import Option

MAXGENRELEN = 32


def _genre(args: Sequence[str], ctx: ParseContext) -> str:
    return put_string(args[0], MAXGENRELEN)


@register
class OsfMatch(KernelPlaced):
    """OS fingerprint match."""

    name = "osf"
    kind = "match"
    valid_hooks = frozenset({PREROUTING, INPUT, FORWARD})
    options = (
        OptionSpec("genre", _genre, invert=True),
        OptionSpec("ttl", lambda a, c: parse_uint(a[0], 2, "osf", "ttl")),
        OptionSpec("log", lambda a, c: parse_uint(a[0], 2, "osf", "log")),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "genre", "osf")
        require_protocol(ctx, IPPROTO_TCP, "osf match")
        self.check_placement(ctx)
        return super().finalize(options, ctx)
