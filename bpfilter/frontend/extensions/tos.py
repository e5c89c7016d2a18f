"""TOS target and ``-m tos`` match (libxt_TOS.c, libxt_tos.c, revision 1).

Values: the target's one option ``set-tos`` is a ``ValueMask``: the kernel does
``tos = (tos & ~mask) ^ value``; ``--and-tos``, ``--or-tos`` and ``--xor-tos``
are folded into it exactly as iptables does (and: 0/~bits, or: bits/bits,
xor: bits/0), so they print as ``--set-tos V/M``. The match's ``tos`` is a
``ValueMask`` compared as ``(tos & mask) == value`` (negatable).

A symbolic name (Minimize-Delay, ...) means value/0x3f (the low six bits of
the old TOS byte), a number without mask means mask 0xff. 1.8.9 accepts any
8-bit value although the help says the maximum is 0x3f.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.frontend.extensions.types import UINT8_MAX, ValueMask, strtoul, try_number
from bpfilter.ir import Option

TOS_SYMBOLS = {
    "minimize-delay": 0x10,
    "maximize-throughput": 0x08,
    "maximize-reliability": 0x04,
    "minimize-cost": 0x02,
    "normal-service": 0x00,
}
SYMBOL_MASK = 0x3F


def parse_tosmask(text: str) -> ValueMask:
    """XTTYPE_TOSMASK: ``value[/mask]`` (8-bit numbers) or a symbolic TOS name."""
    res = strtoul(text)
    if res is not None and res[0] <= UINT8_MAX:
        value, rest = res
        mask = UINT8_MAX
        if rest.startswith("/"):
            m = strtoul(rest[1:])
            if m is None or m[0] > UINT8_MAX:
                raise ExtensionError(f'Illegal value: "{text}"')
            mask, rest = m
        if rest:
            raise ExtensionError(f'Illegal value: "{text}"')
        return ValueMask(value, mask)
    sym = TOS_SYMBOLS.get(text.lower())
    if sym is None:
        raise ExtensionError(f'Symbolic name "{text}" is unknown')
    return ValueMask(sym, SYMBOL_MASK)


def _tosmask(args: Sequence[str], ctx: ParseContext) -> ValueMask:
    return parse_tosmask(args[0])


def _uint8(opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> int:
        v = try_number(args[0], 0, UINT8_MAX)
        if v is None:
            raise ExtensionError(
                f'TOS: bad value for option "--{opt}", or out of range (0-{UINT8_MAX}).'
            )
        return v

    return parse


def _vm(v: ValueMask) -> str:
    return f"0x{v.value:02x}/0x{v.mask:02x}"


@register
class TOS(KernelPlaced):
    """Rewrites the IPv4 TOS / IPv6 traffic class byte (mangle table)."""

    name = "TOS"
    kind = "target"
    valid_tables = ("mangle",)
    options = (
        OptionSpec("set-tos", _tosmask),
        OptionSpec("and-tos", _uint8("and-tos")),
        OptionSpec("or-tos", _uint8("or-tos")),
        OptionSpec("xor-tos", _uint8("xor-tos")),
    )

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        given = [n for n in ("set-tos", "and-tos", "or-tos", "xor-tos") if n in found]
        if not given:
            raise ExtensionError("TOS: An action is required")
        if len(given) > 1:
            raise ExtensionError(
                f'TOS: option "--{given[1]}" cannot be used together with "--{given[0]}".'
            )
        opt = found[given[0]]
        bits = opt.value
        if opt.name == "set-tos":
            vm = bits
        elif opt.name == "and-tos":
            vm = ValueMask(0, ~bits & UINT8_MAX)
        elif opt.name == "or-tos":
            vm = ValueMask(bits, bits)
        else:
            vm = ValueMask(bits, 0)
        return (Option("set-tos", vm),)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(f"--set-tos {_vm(o.value)}" for o in options)


@register
class TosMatch(KernelPlaced):
    """``-m tos [!] --tos value[/mask]``."""

    name = "tos"
    kind = "match"
    options = (OptionSpec("tos", _tosmask, invert=True),)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "tos")
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(
            ("! " if o.negated else "") + f"--tos {_vm(o.value)}" for o in options
        )
