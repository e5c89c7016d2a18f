"""``-m devgroup`` (xt_devgroup): the device group of the input / output interface.

Values: ``src-group`` / ``dst-group`` are ``ValueMask``; names come from
/etc/iproute2/group and print back as names when the mask is full. Each can
be negated. The kernel allows ``--src-group`` only where there is an input
device (PREROUTING, INPUT, FORWARD) and ``--dst-group`` only where there is
an output device (FORWARD, OUTPUT, POSTROUTING).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    OUTPUT,
    POSTROUTING,
    PREROUTING,
    check_hooks_allowed,
    own_hooks,
)
from bpfilter.frontend.extensions.types import ValueMask, format_val_mask_lmap, parse_val_mask_lmap
from bpfilter.ir import Family, Option

GROUPS = "/etc/iproute2/group"
SRC_HOOKS = frozenset({PREROUTING, INPUT, FORWARD})
DST_HOOKS = frozenset({FORWARD, OUTPUT, POSTROUTING})


def _group(args: Sequence[str], ctx: ParseContext) -> ValueMask:
    return ValueMask(*parse_val_mask_lmap(args[0], GROUPS, "Device group"))


@register
class DevgroupMatch(Extension):
    """Interface group match."""

    name = "devgroup"
    kind = "match"
    options = (
        OptionSpec("src-group", _group, invert=True),
        OptionSpec("dst-group", _group, invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = {o.name for o in options}
        if not names:
            raise ExtensionError(
                "devgroup match: You must specify either '--src-group' or '--dst-group'"
            )
        self._check(names, own_hooks(ctx), ctx.family)
        return super().finalize(options, ctx)

    @staticmethod
    def _check(names: set[str], hooks: Iterable[str], family: Family) -> None:
        hooks = tuple(hooks)
        if "src-group" in names:
            check_hooks_allowed("devgroup (--src-group)", "match", hooks, SRC_HOOKS, family)
        if "dst-group" in names:
            check_hooks_allowed("devgroup (--dst-group)", "match", hooks, DST_HOOKS, family)

    def format_value(self, opt: Option) -> str:
        return format_val_mask_lmap(opt.value.value, opt.value.mask, GROUPS)
