"""``-m tcp`` (also loaded by ``-p tcp``): ports, flags, option (libxt_tcp, xt_tcp).

Values: ``sport``/``dport`` are ``PortRange``; ``tcp-flags`` is
``ValueMask(value=comparison, mask=mask)`` as TCP flag bits (FIN=0x01 ...
URG=0x20), ``--syn`` is stored as its meaning ``--tcp-flags FIN,SYN,RST,ACK SYN``;
``tcp-option`` an int 0-255.
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
from bpfilter.frontend.extensions.placement import require_protocol
from bpfilter.frontend.extensions.types import ValueMask, parse_port_range, save_ports, try_number
from bpfilter.ir import Option

FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
         ("URG", 0x20), ("ALL", 0x3F), ("NONE", 0))
SYN_MEANING = ValueMask(0x02, 0x17)


def parse_flags(text: str) -> int:
    """Comma-separated flag names, case-insensitive (parse_tcp_flag)."""
    out = 0
    for tok in text.split(","):
        for name, bit in FLAGS:
            if name.lower() == tok.lower():
                out |= bit
                break
        else:
            raise ExtensionError(f"Unknown TCP flag `{tok}'")
    return out


def format_flags(bits: int) -> str:
    """print_tcpf: names in FIN..URG order, NONE when empty."""
    names = [n for n, b in FLAGS[:6] if bits & b]
    return ",".join(names) if names else "NONE"


def _ports(args: Sequence[str], ctx: ParseContext) -> object:
    return parse_port_range(args[0], "tcp")


def _flags(args: Sequence[str], ctx: ParseContext) -> ValueMask:
    return ValueMask(parse_flags(args[1]), parse_flags(args[0]))


def _option(args: Sequence[str], ctx: ParseContext) -> int:
    v = try_number(args[0], 0, 255)
    if v is None:
        raise ExtensionError(f"Unknown --tcp-option `{args[0]}'")
    return v


@register
class TcpMatch(Extension):
    """TCP header fields; the kernel wants ``-p tcp`` (not negated)."""

    name = "tcp"
    kind = "match"
    options = (
        OptionSpec("sport", _ports, invert=True, aliases=("source-port",)),
        OptionSpec("dport", _ports, invert=True, aliases=("destination-port",)),
        OptionSpec("tcp-option", _option, invert=True),
        OptionSpec("tcp-flags", _flags, invert=True, nargs=2),
        OptionSpec("syn", None, invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        out: dict[str, Option] = {}
        for o in options:
            if o.name == "syn":
                o = Option("tcp-flags", SYN_MEANING, o.negated)
                if "tcp-flags" in out:
                    raise ExtensionError("Only one of `--syn' or `--tcp-flags' allowed")
            elif o.name == "tcp-flags" and "tcp-flags" in out:
                raise ExtensionError("Only one of `--syn' or `--tcp-flags' allowed")
            out[o.name] = o
        require_protocol(ctx, 6, "tcp match")
        order = ("sport", "dport", "tcp-option", "tcp-flags")
        return tuple(out[n] for n in order if n in out)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts: list[str] = []
        for o in options:
            neg = "! " if o.negated else ""
            if o.name in ("sport", "dport"):
                text = save_ports(o, o.name)
                if text:
                    parts.append(text)
            elif o.name == "tcp-option":
                parts.append(f"{neg}--tcp-option {o.value}")
            elif o.name == "tcp-flags":
                vm: ValueMask = o.value
                parts.append(f"{neg}--tcp-flags {format_flags(vm.mask)} {format_flags(vm.value)}")
        return " ".join(parts)
