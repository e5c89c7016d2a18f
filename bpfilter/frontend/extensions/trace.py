"""``-j TRACE``: marks packets for the kernel's rule tracing (raw table only).

No options; it changes no verdict, so the BPF backend may treat it as a no-op
counter (the tracing itself stays with netfilter).
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.ir import Option


@register
class TRACE(KernelPlaced):
    name = "TRACE"
    kind = "target"
    valid_tables = ("raw",)
    options = ()

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return ""
