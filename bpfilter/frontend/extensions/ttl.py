"""IPv4 TTL / IPv6 hop limit: ``-m ttl`` / ``-m hl`` and ``-j TTL`` / ``-j HL``.

Match values: exactly one of ``ttl-eq`` / ``ttl-lt`` / ``ttl-gt`` (``hl-eq`` ...),
an int 0-255; only ``*-eq`` may be negated (``! --ttl-eq`` is "not equal").
``--ttl`` is the old spelling of ``--ttl-eq``.
Target values: exactly one of ``ttl-set`` / ``ttl-dec`` / ``ttl-inc`` (``hl-*``),
an int (dec/inc 1-255). Kernel: the targets only in the mangle table.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionParser,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.frontend.extensions.types import parse_uint
from bpfilter.ir import Family, Option


def _u8(ext: str, opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        return parse_uint(args[0], 255, ext, opt)

    return parse


def _one_of(ext: str, options: Sequence[Option], names: Sequence[str], missing: str) -> Option:
    given = [o for o in options if o.name in names]
    if len(given) > 1:
        raise ExtensionError(f'{ext}: option "--{given[1].name}" cannot be used together '
                             f'with "--{given[0].name}".')
    if not given:
        raise ExtensionError(missing)
    return given[0]


class _LimitMatch(Extension):
    """ttl / hl match: compare the field with a value."""

    prefix = "ttl"

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        p = self.prefix
        names = (f"{p}-eq", f"{p}-lt", f"{p}-gt")
        opt = _one_of(self.name, options, names,
                      f"{self.name}: You must specify one of `--{p}-eq', `--{p}-lt', `--{p}-gt'")
        return (opt,)


@register
class TtlMatch(_LimitMatch):
    name = "ttl"
    kind = "match"
    families = frozenset({Family.IPV4})
    prefix = "ttl"
    options = (
        OptionSpec("ttl-eq", _u8("ttl", "ttl-eq"), invert=True, aliases=("ttl",)),
        OptionSpec("ttl-lt", _u8("ttl", "ttl-lt")),
        OptionSpec("ttl-gt", _u8("ttl", "ttl-gt")),
    )


@register
class HlMatch(_LimitMatch):
    name = "hl"
    kind = "match"
    families = frozenset({Family.IPV6})
    prefix = "hl"
    options = (
        OptionSpec("hl-eq", _u8("hl", "hl-eq"), invert=True),
        OptionSpec("hl-lt", _u8("hl", "hl-lt")),
        OptionSpec("hl-gt", _u8("hl", "hl-gt")),
    )


def _step(ext: str, opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        v = parse_uint(args[0], 255, ext, opt)
        if v == 0:
            raise ExtensionError(f"{ext}: {'decreasing' if opt.endswith('dec') else 'increasing'}"
                                 " by 0?")
        return v

    return parse


class _SetTarget(KernelPlaced):
    """TTL / HL target: set, decrement or increment the field."""

    prefix = "ttl"
    valid_tables = ("mangle",)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        p = self.prefix
        opt = _one_of(self.name, options, (f"{p}-set", f"{p}-dec", f"{p}-inc"),
                      f"{self.name}: You must specify an action")
        self.check_placement(ctx)
        return (opt,)


@register
class TtlTarget(_SetTarget):
    name = "TTL"
    kind = "target"
    families = frozenset({Family.IPV4})
    prefix = "ttl"
    options = (
        OptionSpec("ttl-set", _u8("TTL", "ttl-set")),
        OptionSpec("ttl-dec", _step("TTL", "ttl-dec")),
        OptionSpec("ttl-inc", _step("TTL", "ttl-inc")),
    )


@register
class HlTarget(_SetTarget):
    name = "HL"
    kind = "target"
    families = frozenset({Family.IPV6})
    prefix = "hl"
    options = (
        OptionSpec("hl-set", _u8("HL", "hl-set")),
        OptionSpec("hl-dec", _step("HL", "hl-dec")),
        OptionSpec("hl-inc", _step("HL", "hl-inc")),
    )
