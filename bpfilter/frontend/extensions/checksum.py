"""CHECKSUM target (libxt_CHECKSUM.c): fills in a missing checksum (mangle table).

Value: ``checksum-fill`` (True), mandatory.
"""

from __future__ import annotations

from bpfilter.frontend.extensions.base import OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.ir import Option


@register
class CHECKSUM(KernelPlaced):
    name = "CHECKSUM"
    kind = "target"
    valid_tables = ("mangle",)
    options = (OptionSpec("checksum-fill"),)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "checksum-fill")
        return self.ordered(found.values())
