"""``-m bpf`` (xt_bpf): a classic BPF program (or a pinned eBPF one) decides.

Values: ``bytecode`` is a tuple of ``(code, jt, jf, k)`` instructions (the
``nfbpf_compile``/``bpf_asm -c`` text ``N,c t f k,...``, at most 64);
``object-pinned`` a bpffs path (the kernel opens it when the rule is
committed). Exactly one of them. The classic program can be run by a BPF
backend as is: it sees the packet from the network header on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.ir import Option

MAX_INSTR = 64
Insn = tuple[int, int, int, int]
_HEAD = re.compile(r"\s*\+?(\d+),")
_INSN = re.compile(r"\s*\+?(\d+)\s+\+?(\d+)\s+\+?(\d+)\s+\+?(\d+)")


def parse_bytecode(text: str) -> tuple[Insn, ...]:
    """libxt_bpf bpf_parse_string: ``count,code jt jf k,code jt jf k...``."""
    m = _HEAD.match(text)
    if m is None:
        raise ExtensionError("bpf: error parsing program length")
    count = int(m.group(1)) & 0xFFFF
    if count == 0:
        raise ExtensionError("bpf: illegal zero length program")
    if count > MAX_INSTR:
        raise ExtensionError("bpf: number of instructions exceeds maximum")
    insns: list[Insn] = []
    pos = text.find(",")
    while pos >= 0 and pos + 1 < len(text):
        token = text[pos + 1:]
        if len(insns) >= count:
            raise ExtensionError("bpf: real program length exceeds encoded length parameter")
        im = _INSN.match(token)
        if im is None:
            raise ExtensionError(f"bpf: error at instr {len(insns)}")
        code, jt, jf, k = (int(g) for g in im.groups())
        insns.append((code & 0xFFFF, jt & 0xFF, jf & 0xFF, k & 0xFFFFFFFF))
        pos = text.find(",", pos + 1)
    if len(insns) != count:
        raise ExtensionError(
            "bpf: parsed program length is less than the encoded length parameter"
        )
    return tuple(insns)


@register
class BpfMatch(Extension):
    """Classic/pinned BPF program match."""

    name = "bpf"
    kind = "match"
    options = (
        OptionSpec("bytecode", lambda a, c: parse_bytecode(a[0])),
        OptionSpec("object-pinned", lambda a, c: a[0]),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = {o.name for o in options}
        if len(names) != 1:
            raise ExtensionError("bpf: one of --bytecode or --object-pinned is required")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        if opt.name == "bytecode":
            body = ",".join(f"{c} {t} {f} {k}" for c, t, f, k in opt.value)
            return f'"{len(opt.value)},{body}"'
        return str(opt.value)
