"""ECN target (IPv4, libipt_ECN.c) and ``-m ecn`` match (libxt_ecn.c).

Target values: ``ecn-tcp-ece`` / ``ecn-tcp-cwr`` (0 or 1: the TCP flag is set
to it) and ``ecn-ip-ect`` (0-3: the IP ECN field is set to it), each present
only when that field is rewritten. ``--ecn-tcp-remove`` is ``ece 0`` +
``cwr 0`` and prints back as ``--ecn-tcp-remove`` (as iptables-save does for
exactly that combination). As in 1.8.9, ``--ecn-tcp-remove`` given after
``--ecn-ip-ect`` drops the IP rewrite (it assigns the whole operation).

Match values: ``ecn-tcp-ece`` / ``ecn-tcp-cwr`` are flags (True, negatable:
flag set / not set), ``ecn-ip-ect`` an int 0-3 (negatable).

Kernel checks: the TCP parts need ``-p tcp`` (not negated); the target lives
in the mangle table.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import IPPROTO_TCP, KernelPlaced, family_prefix
from bpfilter.frontend.extensions.types import try_number
from bpfilter.ir import Family, Option


def _uint(ext: str, opt: str, lmax: int):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        v = try_number(args[0], 0, lmax)
        if v is None:
            raise ExtensionError(
                f'{ext}: bad value for option "--{opt}", or out of range (0-{lmax}).'
            )
        return v

    return parse


def _is_tcp(ctx: ParseContext) -> bool:
    p = ctx.protocol
    return p is not None and not p.negated and p.value == IPPROTO_TCP


@register
class ECN(KernelPlaced):
    """Rewrites ECN bits (IPv4 only, mangle table)."""

    name = "ECN"
    kind = "target"
    families = frozenset({Family.IPV4})
    valid_tables = ("mangle",)
    options = (
        OptionSpec("ecn-tcp-remove"),
        OptionSpec("ecn-tcp-ece", _uint("ECN", "ecn-tcp-ece", 1)),
        OptionSpec("ecn-tcp-cwr", _uint("ECN", "ecn-tcp-cwr", 1)),
        OptionSpec("ecn-ip-ect", _uint("ECN", "ecn-ip-ect", 3)),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_generic(options)
        found = {o.name: o for o in options}
        if not found:
            raise ExtensionError("ECN target: An operation is required")
        for other in ("ecn-tcp-ece", "ecn-tcp-cwr"):
            self.exclusive(found, "ecn-tcp-remove", other)
        # Replay in order: --ecn-tcp-remove assigns the whole operation.
        fields: dict[str, int] = {}
        for opt in options:
            if opt.name == "ecn-tcp-remove":
                fields = {"ecn-tcp-ece": 0, "ecn-tcp-cwr": 0}
            else:
                fields[opt.name] = opt.value
        if ("ecn-tcp-ece" in fields or "ecn-tcp-cwr" in fields) and not _is_tcp(ctx):
            raise ExtensionError(
                f"{family_prefix(ctx.family)}_tables: ECN target: cannot use TCP operations "
                "on a non-tcp rule"
            )
        self.check_placement(ctx)
        return self.ordered(Option(n, v) for n, v in fields.items())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        vals = {o.name: o.value for o in options}
        if vals == {"ecn-tcp-ece": 0, "ecn-tcp-cwr": 0}:
            return "--ecn-tcp-remove"
        return " ".join(f"--{o.name} {o.value}" for o in options)


@register
class EcnMatch(KernelPlaced):
    """``-m ecn``: TCP ECE/CWR flags and the IP ECN field."""

    name = "ecn"
    kind = "match"
    options = (
        OptionSpec("ecn-tcp-ece", invert=True),
        OptionSpec("ecn-tcp-cwr", invert=True),
        OptionSpec("ecn-ip-ect", _uint("ecn", "ecn-ip-ect", 3), invert=True),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not found:
            raise ExtensionError("ECN match: some option required")
        if ("ecn-tcp-ece" in found or "ecn-tcp-cwr" in found) and not _is_tcp(ctx):
            raise ExtensionError(
                f"{family_prefix(ctx.family)}_tables: ecn match: can't match TCP bits in rule "
                "for non-tcp packets"
            )
        return self.ordered(found.values())
