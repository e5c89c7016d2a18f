"""``-m helper --helper NAME`` (xt_helper): the connection's conntrack helper.

Value: ``helper`` is a str (cut to 29 bytes, as 1.8.9 does; ``ftp-21`` style names
select a helper on a port). ``!`` inverts. Needs conntrack state, so a BPF
backend leaves it to netfilter or reads it through the ct kfuncs.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.types import put_string, save_string
from bpfilter.ir import Option


def _name(args: Sequence[str], ctx: ParseContext) -> str:
    return put_string(args[0], 30)


@register
class HelperMatch(Extension):
    """Conntrack helper name match; mandatory ``--helper``."""

    name = "helper"
    kind = "match"
    options = (OptionSpec("helper", _name, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "helper", "helper")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return save_string(opt.value)
