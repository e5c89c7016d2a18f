"""``-m connlabel --label BIT [--set]`` (xt_connlabel): a conntrack label bit.

Value: ``label`` is the label bit number (int, 0-127: the kernel refuses
larger ones). When /etc/xtables/connlabel.conf exists, labels are given and
printed by name, as libxt_connlabel does with a label map; without it only
numbers are accepted. ``set`` (flag) also sets the bit. ``!`` inverts.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.types import strtoul
from bpfilter.ir import Option

LABEL_CONF = "/etc/xtables/connlabel.conf"
MAXBIT = 127


def _label_map() -> dict[str, int] | None:
    """connlabel.conf as name -> bit, or None when there is none (numbers then)."""
    try:
        text = open(LABEL_CONF, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0].isdigit():
            out.setdefault(fields[1], int(fields[0]))
    return out or None


def _label(args: Sequence[str], ctx: ParseContext) -> int:
    s = args[0]
    if s == "":
        raise ExtensionError('connlabel: option "--label" must not be empty')
    labels = _label_map()
    bit: int | None
    if labels is not None:
        bit = labels.get(s)
    else:
        res = strtoul(s)
        bit = res[0] & 0xFFFF if res is not None and res[1] == "" else None
    if bit is None:
        raise ExtensionError(f"label '{s}' not found or invalid value")
    if bit > MAXBIT:
        raise ExtensionError(f"connlabel: label bit {bit} out of range (0-{MAXBIT})")
    return bit


@register
class ConnlabelMatch(Extension):
    """Conntrack label match."""

    name = "connlabel"
    kind = "match"
    options = (OptionSpec("label", _label, invert=True), OptionSpec("set"))

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "label", "connlabel")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        labels = _label_map() or {}
        name = next((n for n, b in labels.items() if b == opt.value), None)
        return f'"{name if name is not None else opt.value}"'
