"""``-m string`` (xt_string rev. 1): a byte pattern in the packet.

Values: ``string`` is the pattern as bytes (from ``--string`` or
``--hex-string``, at most 128 bytes; ``!`` inverts); ``algo`` "bm" or "kmp"
(the kernel's text search algorithms); ``from``/``to`` ints (search window
in bytes from the network header, default 0 and 65535); ``icase`` flag.
Save prints ``--string "..."`` unless the pattern has an unprintable byte
or ends in a backslash, then ``--hex-string "|..|"``, as 1.8.9 does.
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
from bpfilter.frontend.extensions.types import parse_uint
from bpfilter.ir import Option

MAX_PATTERN = 128
ALGOS = ("bm", "kmp")
_HEX = "0123456789abcdefABCDEF"


def _too_long(s: str) -> ExtensionError:
    return ExtensionError(f'STRING too long "{s}"')


def parse_string(args: Sequence[str], ctx: ParseContext) -> bytes:
    data = args[0].encode("utf-8", "surrogateescape")
    if len(data) > MAX_PATTERN:
        raise _too_long(args[0])
    return data


def parse_hex_string(args: Sequence[str], ctx: ParseContext) -> bytes:
    """libxt_string parse_hex_string, step for step (a ``|`` falls through to the next byte).

    Text with ``|hex bytes|`` blocks and ``\\`` literals outside them.
    """
    text = args[0]
    s = text.encode("utf-8", "surrogateescape")
    n = len(s)
    if n == 0:
        raise ExtensionError("STRING must contain at least one char")
    out = bytearray()
    i, hex_f, literal_f = 0, False, False
    while i < n:
        if len(out) >= MAX_PATTERN:
            raise _too_long(text)
        c = s[i]
        if c == 0x5C and not hex_f:  # backslash
            literal_f = True
        elif c == 0x5C:
            raise ExtensionError("Cannot include literals in hex data")
        elif c == 0x7C:  # '|'
            if hex_f:
                hex_f = False
            else:
                hex_f = True
                while i + 1 < n and s[i + 1] == 0x20:
                    i += 1
            if i + 1 >= n:
                break
            i += 1
        if literal_f:
            if i + 1 >= n:
                raise ExtensionError("Bad literal placement at end of string")
            out.append(s[i + 1])
            i += 2
            literal_f = False
        elif hex_f:
            if i + 1 >= n:
                raise ExtensionError("Odd number of hex digits")
            if i + 2 >= n:
                raise ExtensionError("Invalid hex block")
            for d in (s[i], s[i + 1]):
                if chr(d) not in _HEX:
                    raise ExtensionError(f"Invalid hex char '{chr(d)}'")
            out.append(int(s[i:i + 2], 16))
            i += 3 if s[i + 2] == 0x20 else 2
        else:
            out.append(s[i])
            i += 1
    return bytes(out)


def _algo(args: Sequence[str], ctx: ParseContext) -> str:
    if len(args[0]) >= 16:
        raise ExtensionError('string: option "--algo" must be no longer than 15 characters')
    return args[0]


def format_pattern(data: bytes) -> tuple[str, str]:
    """(option name, quoted text) the way libxt_string's save prints a pattern."""
    if any(not 0x20 <= b < 0x7F for b in data) or data.endswith(b"\\"):
        return "hex-string", '"|' + data.hex() + '|"'
    body = "".join(("\\" if chr(b) in '"\\' else "") + chr(b) for b in data)
    return "string", f'"{body}"'


@register
class StringMatch(Extension):
    """Packet payload pattern match."""

    name = "string"
    kind = "match"
    options = (
        OptionSpec("string", parse_string, invert=True),
        OptionSpec("algo", _algo),
        OptionSpec("from", lambda a, c: parse_uint(a[0], 0xFFFF, "string", "from")),
        OptionSpec("to", lambda a, c: parse_uint(a[0], 0xFFFF, "string", "to")),
        OptionSpec("icase"),
        OptionSpec("hex-string", parse_hex_string, invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = by_name(options)
        if "string" in found and "hex-string" in found:
            a, b = sorted(("string", "hex-string"), key=[o.name for o in options].index)
            raise ExtensionError(f'string: option "--{b}" cannot be used together with "--{a}".')
        pattern = found.get("string") or found.get("hex-string")
        if pattern is None:
            raise ExtensionError("STRING match: You must specify `--string' or `--hex-string'")
        if not pattern.value:
            raise ExtensionError("string: empty pattern (kernel: Invalid argument)")
        algo = must_have(found, "algo", "string")
        if algo.value not in ALGOS:
            raise ExtensionError(f"string: unknown text search algorithm `{algo.value}' "
                                 "(kernel: Invalid argument)")
        start = found["from"].value if "from" in found else 0
        stop = found["to"].value if "to" in found else 0xFFFF
        if start > stop:
            raise ExtensionError(f"string: --from {start} is after --to {stop} "
                                 "(kernel: Invalid argument)")
        out = [Option("string", pattern.value, pattern.negated), algo]
        if start:
            out.append(Option("from", start))
        if stop != 0xFFFF:
            out.append(Option("to", stop))
        if "icase" in found:
            out.append(Option("icase"))
        return tuple(out)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            if o.name == "string":
                name, text = format_pattern(o.value)
                parts.append(("! " if o.negated else "") + f"--{name} {text}")
            elif o.name == "icase":
                parts.append("--icase")
            else:
                parts.append(f"--{o.name} {o.value}")
        return " ".join(parts)
