"""``-m cgroup`` (xt_cgroup rev. 1/2): the sending socket's cgroup.

Values: ``path`` is a str (a cgroup v2 path, printed with iptables' quoting),
``cgroup`` an int (net_cls classid). Exactly one of them must be given (the
kernel refuses none or both); each can be negated. The kernel resolves the
path when the rule is committed and allows the match from INPUT, OUTPUT and
POSTROUTING only (it needs a local socket).
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import INPUT, OUTPUT, POSTROUTING, KernelPlaced
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint, put_string, save_string
from bpfilter.ir import Option

PATH_MAX = 4096


def _path(args: Sequence[str], ctx: ParseContext) -> str:
    return put_string(args[0], PATH_MAX)


@register
class CgroupMatch(KernelPlaced):
    """Socket cgroup match."""

    name = "cgroup"
    kind = "match"
    valid_hooks = frozenset({INPUT, OUTPUT, POSTROUTING})
    options = (
        OptionSpec("path", _path, invert=True),
        OptionSpec("cgroup", lambda a, c: parse_uint(a[0], UINT32_MAX, "cgroup", "cgroup"),
                   invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = {o.name for o in options}
        if len(names) != 1:
            raise ExtensionError(
                "cgroup: exactly one of --path and --cgroup is needed (kernel: Invalid argument)"
            )
        self.check_placement(ctx)
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return save_string(opt.value) if opt.name == "path" else str(opt.value)
