"""IDLETIMER target (libxt_IDLETIMER.c, revision 1): a sysfs timer reset by traffic.

Values: ``timeout`` seconds (int), ``label`` the timer's name (cut to 27
characters like the kernel structure), ``alarm`` True for an alarm timer.
Kernel: timeout 1..2147482, label not empty and not "power".
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced, family_prefix
from bpfilter.frontend.extensions.types import UINT32_MAX, try_number
from bpfilter.ir import Option

LABEL_SIZE = 28
INT_MAX = 2**31 - 1


def _timeout(args: Sequence[str], ctx: ParseContext) -> int:
    v = try_number(args[0], 0, UINT32_MAX)
    if v is None:
        raise ExtensionError(
            f'IDLETIMER: bad value for option "--timeout", or out of range (0-{UINT32_MAX}).'
        )
    return v


def _label(args: Sequence[str], ctx: ParseContext) -> str:
    return args[0][: LABEL_SIZE - 1]


@register
class IDLETIMER(KernelPlaced):
    name = "IDLETIMER"
    kind = "target"
    options = (OptionSpec("timeout", _timeout), OptionSpec("label", _label), OptionSpec("alarm"))

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        timeout = self.must(found, "timeout").value
        label = self.must(found, "label").value
        fam = family_prefix(ctx.family)
        if timeout == 0 or timeout >= INT_MAX // 1000:
            raise ExtensionError(f"{fam}_tables: IDLETIMER target: timeout value out of range")
        if label in ("", "power"):
            raise ExtensionError(f'{fam}_tables: IDLETIMER target: bad label "{label}"')
        return self.ordered(found.values())
