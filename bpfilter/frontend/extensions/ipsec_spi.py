"""IPsec SPI matches: ``-m ah``, ``-m esp``, ``-m ipcomp`` (xt_ah/ip6t_ah, xt_esp, xt_ipcomp).

Values: ``ahspi``/``espspi``/``ipcompspi`` are ``NumRange(lo, hi)`` of the 32-bit
SPI (CPI for ipcomp, compared against the 16-bit CPI by the kernel); ``ahlen``
is an int (IPv6 only), ``ahres``/``compres`` are flags (True).

Semantics kept from iptables 1.8.9 / the kernel:
- an absent SPI option means the full range, so ``--ahspi 0:4294967295`` is
  dropped by ``finalize``; a *negated* full range (matches nothing) is kept in
  the IR but, as 1.8.9 does, not printed;
- ``-m ipcomp`` without ``--ipcompspi`` matches CPI 0 only (no init in
  libxt_ipcomp), so ``finalize`` adds ``ipcompspi 0`` and it prints; an
  explicit ``--ipcompspi 0:4294967295`` (any CPI) is kept in the IR although
  1.8.9 prints nothing for it (its save text then restores as CPI 0: an
  iptables bug we reproduce in print only);
- 1.8.9 accepts ``lo > hi`` (a range matching nothing); we keep it as given;
- IPv4 ah, esp and ipcomp are bound to their protocol: the kernel refuses them
  without ``-p ah``/``-p esp``/``-p ipcomp`` (IPv6 ah walks extension headers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from bpfilter.frontend.extensions.base import (
    Extension,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import without_default
from bpfilter.frontend.extensions.placement import require_protocol
from bpfilter.frontend.extensions.types import UINT32_MAX, NumRange, parse_range_rc, parse_uint
from bpfilter.ir import Family, Option

IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_COMP = 108
FULL = NumRange(0, UINT32_MAX)


def _spi_parser(ext: str, opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> NumRange:
        return parse_range_rc(args[0], UINT32_MAX, ext, opt)

    return parse


def _save_spi(opt: Option) -> str:
    """1.8.9 prints nothing for the full range, negated or not."""
    if opt.value == FULL:
        return ""
    return ("! " if opt.negated else "") + f"--{opt.name} {opt.value}"


class _SpiMatch(Extension):
    """Common shape: one SPI range option plus optional extra flags."""

    kind = "match"
    spi_option: ClassVar[str]
    protocol: ClassVar[int]
    default_spi: ClassVar[NumRange | None] = None

    def _bound_to_protocol(self, ctx: ParseContext) -> bool:
        return True

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if self._bound_to_protocol(ctx):
            require_protocol(ctx, self.protocol, f"{self.name} match")
        # An explicit full range means "any SPI": drop it, unless the default is not
        # "any" (ipcomp), where it must stay although 1.8.9 prints nothing for it.
        kept = (without_default(options, self.spi_option, FULL) if self.default_spi is None
                else list(options))
        has_spi = any(o.name == self.spi_option for o in options)
        if not has_spi and self.default_spi is not None:
            kept.append(Option(self.spi_option, self.default_spi))
        return super().finalize(kept, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            if o.name == self.spi_option:
                parts.append(_save_spi(o))
            elif o.name == "ahlen":
                parts.append(("! " if o.negated else "") + f"--ahlen {o.value}")
            else:
                parts.append(f"--{o.name}")
        return " ".join(p for p in parts if p)


@register
class AhMatch(_SpiMatch):
    """IPv4 ``-m ah --ahspi`` (libipt_ah): bound to ``-p ah``."""

    name = "ah"
    spi_option = "ahspi"
    protocol = IPPROTO_AH
    families = frozenset({Family.IPV4})
    options = (OptionSpec("ahspi", _spi_parser("ah", "ahspi"), invert=True),)


@register
class Ah6Match(_SpiMatch):
    """IPv6 ``-m ah`` (libip6t_ah): --ahspi, --ahlen, --ahres; finds AH among extension headers."""

    name = "ah"
    spi_option = "ahspi"
    protocol = IPPROTO_AH
    families = frozenset({Family.IPV6})
    options = (
        OptionSpec("ahspi", _spi_parser("ah", "ahspi"), invert=True),
        OptionSpec(
            "ahlen",
            lambda a, c: parse_uint(a[0], UINT32_MAX, "ah", "ahlen"),
            invert=True,
        ),
        OptionSpec("ahres"),
    )

    def _bound_to_protocol(self, ctx: ParseContext) -> bool:
        return False

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        # ip6t_ah: --ahlen 0 (not negated) is the default and not printed.
        options = without_default(options, "ahlen", 0)
        return super().finalize(options, ctx)


@register
class EspMatch(_SpiMatch):
    """``-m esp --espspi``: both families, bound to ``-p esp``."""

    name = "esp"
    spi_option = "espspi"
    protocol = IPPROTO_ESP
    options = (OptionSpec("espspi", _spi_parser("esp", "espspi"), invert=True),)


@register
class IpcompMatch(_SpiMatch):
    """``-m ipcomp --ipcompspi [--compres]``: both families, bound to ``-p ipcomp``."""

    name = "ipcomp"
    spi_option = "ipcompspi"
    protocol = IPPROTO_COMP
    default_spi = NumRange(0, 0)
    options = (
        OptionSpec("ipcompspi", _spi_parser("ipcomp", "ipcompspi"), invert=True),
        OptionSpec("compres"),
    )
