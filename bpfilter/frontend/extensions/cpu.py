"""``-m cpu --cpu N`` (xt_cpu): match the CPU handling the packet.

Value: ``cpu`` is an int (0 to 2**32-1); ``!`` inverts. BPF reads it with
``bpf_get_smp_processor_id()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import Extension, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint
from bpfilter.ir import Option


@register
class CpuMatch(Extension):
    """Processor number match; mandatory ``--cpu``."""

    name = "cpu"
    kind = "match"
    options = (
        OptionSpec("cpu", lambda a, c: parse_uint(a[0], UINT32_MAX, "cpu", "cpu"), invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "cpu", "cpu")
        return super().finalize(options, ctx)
