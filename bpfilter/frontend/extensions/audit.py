"""AUDIT target (libxt_AUDIT.c): records the packet in the audit log.

Value: ``type`` is "accept", "drop" or "reject" (given in any case), mandatory.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.ir import Option

AUDIT_TYPES = ("accept", "drop", "reject")


def _type(args: Sequence[str], ctx: ParseContext) -> str:
    t = args[0].lower()
    if t not in AUDIT_TYPES:
        raise ExtensionError(f'Bad action type value "{args[0]}"')
    return t


@register
class AUDIT(KernelPlaced):
    name = "AUDIT"
    kind = "target"
    options = (OptionSpec("type", _type),)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "type")
        return self.ordered(found.values())
