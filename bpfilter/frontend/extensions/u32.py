"""``-m u32 --u32 TESTS`` (xt_u32): arithmetic on 32-bit words of the packet.

Value: ``u32`` is a tuple of ``U32Test`` (all must hold; ``!`` inverts the
whole match). A test reads a location — a start offset, then operators
``&`` (mask), ``<<``/``>>`` (shift) and ``@`` (move to the offset computed
so far and read again) each with a number — and compares the result with a
list of ``NumRange`` values. Up to 10 tests, 10 operators and 10 ranges.
Save prints it canonically in hex, as libxt_u32 does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.types import UINT32_MAX, NumRange, strtoul
from bpfilter.ir import Option

MAXSIZE = 10


@dataclass(frozen=True)
class U32Test:
    """``start (op number)* = range,...``: ``ops`` pairs are ("&"|"<<"|">>"|"@", number)."""

    start: int
    ops: tuple[tuple[str, int], ...]
    values: tuple[NumRange, ...]

    def __str__(self) -> str:
        loc = f"0x{self.start:x}" + "".join(f"{op}0x{n:x}" for op, n in self.ops)
        vals = ",".join(f"0x{r.lo:x}" if r.lo == r.hi else f"0x{r.lo:x}:0x{r.hi:x}"
                        for r in self.values)
        return f"{loc}={vals}"


class _Reader:
    """Cursor over the argument with libxt_u32's error messages (char positions)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def err(self, msg: str) -> ExtensionError:
        return ExtensionError(f"u32: at char {self.i}: {msg}")

    def skip_space(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def number(self) -> int:
        res = strtoul(self.s[self.i:])
        if res is None or res[0] > UINT32_MAX:
            raise self.err("expected number")
        self.i = len(self.s) - len(res[1])
        return res[0]


def parse_u32(args: Sequence[str], ctx: ParseContext) -> tuple[U32Test, ...]:
    r = _Reader(args[0])
    tests: list[U32Test] = []
    loc: list[int] = []
    ops: list[tuple[str, int]] = []
    values: list[NumRange] = []
    reading_values = False
    while True:
        r.skip_space()
        c = r.peek()
        if c == "":
            if not reading_values:
                raise ExtensionError("u32: abrupt end of input after location specifier")
            if not values:
                raise ExtensionError("u32: test ended with no value specified")
            tests.append(U32Test(loc[0], tuple(ops), tuple(values)))
            if len(tests) > MAXSIZE:
                raise r.err('too many "&&"s')
            return tuple(tests)
        if not reading_values:
            if c == "=":
                if not loc:
                    raise r.err("location spec missing")
                r.i += 1
                reading_values = True
                continue
            op = None
            if loc:
                if c == "&":
                    op = "&"
                elif c in "<>":
                    r.i += 1
                    if r.peek() != c:
                        raise r.err(f"a second '{c}' was expected")
                    op = c * 2
                elif c == "@":
                    op = "@"
                else:
                    raise r.err("operator expected")
                r.i += 1
            n = r.number()
            if op is None:
                loc.append(n)
            else:
                ops.append((op, n))
                loc.append(n)
            if len(loc) > MAXSIZE:
                raise r.err("too many operators")
        else:
            if c == "&":
                r.i += 1
                if r.peek() != "&":
                    raise r.err("a second '&' was expected")
                if not values:
                    raise r.err("value spec missing")
                tests.append(U32Test(loc[0], tuple(ops), tuple(values)))
                if len(tests) >= MAXSIZE:
                    raise r.err('too many "&&"s')
                r.i += 1
                loc, ops, values, reading_values = [], [], [], False
                continue
            if values:
                if c != ",":
                    raise r.err('expected "," or "&&"')
                r.i += 1
            lo = r.number()
            r.skip_space()
            hi = lo
            if r.peek() == ":":
                r.i += 1
                hi = r.number()
            values.append(NumRange(lo, hi))
            if len(values) > MAXSIZE:
                raise r.err('too many ","s')


@register
class U32Match(Extension):
    """Packet word arithmetic match."""

    name = "u32"
    kind = "match"
    options = (OptionSpec("u32", parse_u32, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('u32: option "--u32" must be specified')
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return '"' + "&&".join(str(t) for t in opt.value) + '"'
