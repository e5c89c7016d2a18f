"""HMARK target (libxt_HMARK.c): sets the packet mark from a hash of its tuple.

Values (all ints unless said): ``hmark-src-prefix`` / ``hmark-dst-prefix`` the
address masks as prefix lengths; ``hmark-sport-mask``, ``hmark-dport-mask``
(16 bit), ``hmark-spi-mask`` (32 bit), ``hmark-sport``, ``hmark-dport``,
``hmark-spi`` (OR-ed in), ``hmark-proto-mask`` (16 bit), ``hmark-rnd``,
``hmark-mod`` (≥ 1), ``hmark-offset``; ``hmark-tuple`` is the flag "ct" (hash
the conntrack tuple). ``--hmark-tuple src,dst,sport,dport,spi,proto`` is folded
into the masks (all ones), as iptables stores it; tuple words may be abbreviated
(``s`` is src, ``sp`` sport), as strncasecmp lets them.

1.8.9 quirk kept: a mask given in dotted form that is not contiguous counts as
the full prefix. Kernel checks: mod and rnd mandatory, no spi mask/value
together with port masks/values.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced, family_prefix
from bpfilter.frontend.extensions.types import UINT16_MAX, UINT32_MAX, try_number
from bpfilter.frontend.netparse import parse_host
from bpfilter.ir import Option

TUPLE_WORDS = ("ct", "src", "dst", "sport", "dport", "proto", "spi")
# tuple word -> (option it sets, value meaning "all ones")
_TUPLE_OPTION = {
    "src": "hmark-src-prefix",
    "dst": "hmark-dst-prefix",
    "sport": "hmark-sport-mask",
    "dport": "hmark-dport-mask",
    "proto": "hmark-proto-mask",
    "spi": "hmark-spi-mask",
}
_PKT_OPTIONS = frozenset(
    {
        "hmark-src-prefix", "hmark-dst-prefix", "hmark-spi-mask", "hmark-sport-mask",
        "hmark-dport-mask", "hmark-proto-mask", "hmark-sport", "hmark-dport", "hmark-spi",
    }
)


def _uint(opt: str, lmax: int, lo: int = 0):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        v = try_number(args[0], lo, lmax)
        if v is None:
            raise ExtensionError(
                f'HMARK: bad value for option "--{opt}", or out of range ({lo}-{lmax}).'
            )
        return v

    return parse


def _plen(opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        bits = ctx.family.bits
        n = try_number(args[0], 0, bits)
        if n is not None:
            return n
        mask = parse_host(args[0], ctx.family)
        if mask is None:
            raise ExtensionError(
                f'HMARK: bad value for option "--{opt}", neither a valid network mask '
                f"nor valid CIDR (0-{bits})."
            )
        m = int(mask)
        ones = bin(m).count("1")
        contiguous = m == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1)
        return ones if contiguous else bits

    return parse


def _tuple(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
    text = args[0]
    *items, last = text.split(",")
    if last == "":
        raise ExtensionError(
            '"--hmark-tuple" requires a list of types with no spaces, e.g. '
            "src,dst,sport,dport,proto"
        )
    words: set[str] = set()
    for i, item in enumerate([*items, last]):
        word = next(
            (w for w in TUPLE_WORDS if item and len(item) <= len(w) and w.startswith(item.lower())),
            None,
        )
        if word is None:
            raise ExtensionError(f'Bad type "{",".join([*items, last][i:])}"')
        words.add(word)
    return frozenset(words)


@register
class HMARK(KernelPlaced):
    name = "HMARK"
    kind = "target"
    options = (
        OptionSpec("hmark-src-prefix", _plen("hmark-src-prefix")),
        OptionSpec("hmark-dst-prefix", _plen("hmark-dst-prefix")),
        OptionSpec("hmark-sport-mask", _uint("hmark-sport-mask", UINT16_MAX)),
        OptionSpec("hmark-dport-mask", _uint("hmark-dport-mask", UINT16_MAX)),
        OptionSpec("hmark-spi-mask", _uint("hmark-spi-mask", UINT32_MAX)),
        OptionSpec("hmark-sport", _uint("hmark-sport", UINT16_MAX)),
        OptionSpec("hmark-dport", _uint("hmark-dport", UINT16_MAX)),
        OptionSpec("hmark-spi", _uint("hmark-spi", UINT32_MAX)),
        OptionSpec("hmark-proto-mask", _uint("hmark-proto-mask", UINT16_MAX)),
        OptionSpec("hmark-rnd", _uint("hmark-rnd", UINT32_MAX)),
        OptionSpec("hmark-mod", _uint("hmark-mod", UINT32_MAX, 1)),
        OptionSpec("hmark-offset", _uint("hmark-offset", UINT32_MAX)),
        OptionSpec("hmark-tuple", _tuple),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_generic(options)
        full = {
            "hmark-src-prefix": ctx.family.bits,
            "hmark-dst-prefix": ctx.family.bits,
            "hmark-sport-mask": UINT16_MAX,
            "hmark-dport-mask": UINT16_MAX,
            "hmark-proto-mask": UINT16_MAX,
            "hmark-spi-mask": UINT32_MAX,
        }
        # Replay: a tuple word sets its option (and its "given" flag) like the option would.
        values: dict[str, int | bool] = {}
        for opt in options:
            if opt.name != "hmark-tuple":
                if opt.name in values:
                    raise ExtensionError(f'HMARK: option "--{opt.name}" can only be used once.')
                values[opt.name] = opt.value
                continue
            for word in opt.value:
                if word == "ct":
                    values["hmark-tuple"] = True
                else:
                    values[_TUPLE_OPTION[word]] = full[_TUPLE_OPTION[word]]
        if "hmark-mod" not in values:
            raise ExtensionError("--hmark-mod is mandatory")
        if "hmark-rnd" not in values:
            raise ExtensionError("--hmark-rnd is mandatory")
        if "hmark-spi-mask" in values and (
            "hmark-sport-mask" in values or "hmark-dport-mask" in values
        ):
            raise ExtensionError(
                "you cannot use --hmark-spi-mask and --hmark-?port-mask,at the same time"
            )
        if not (_PKT_OPTIONS & values.keys()) and "hmark-tuple" not in values:
            raise ExtensionError("you have to specify --hmark-tuple at least")
        if "hmark-spi" in values and ("hmark-sport" in values or "hmark-dport" in values):
            raise ExtensionError(
                f"{family_prefix(ctx.family)}_tables: HMARK target: spi-set and port-set "
                "can't be combined"
            )
        self.check_placement(ctx)
        return self.ordered(Option(n, v) for n, v in values.items())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        fmt = {
            "hmark-sport-mask": "0x{:04x}", "hmark-dport-mask": "0x{:04x}",
            "hmark-spi-mask": "0x{:08x}", "hmark-sport": "0x{:04x}", "hmark-dport": "0x{:04x}",
            "hmark-spi": "0x{:08x}", "hmark-proto-mask": "0x{:02x}", "hmark-rnd": "0x{:08x}",
        }
        parts = []
        for o in options:
            if o.name == "hmark-tuple":
                parts.append("--hmark-tuple ct")
            else:
                parts.append(f"--{o.name} " + fmt.get(o.name, "{}").format(o.value))
        return " ".join(parts)
