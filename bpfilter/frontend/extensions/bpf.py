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


# Classic BPF opcodes the kernel accepts (net/core/filter.c, chk_code_allowed).
_ALLOWED = frozenset({
    0x04, 0x0C, 0x14, 0x1C, 0x24, 0x2C, 0x34, 0x3C, 0x94, 0x9C, 0x44, 0x4C, 0x54, 0x5C,
    0x64, 0x6C, 0x74, 0x7C, 0xA4, 0xAC, 0x84,  # ALU
    0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80,  # LD
    0x01, 0x61, 0x81, 0xB1, 0x02, 0x03, 0x07, 0x87,  # LDX, ST, STX, TAX, TXA
    0x06, 0x16,  # RET
    0x05, 0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0x45, 0x4D,  # JMP
})
_COND_JUMPS = frozenset({0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0x45, 0x4D})
SKF_AD_OFF = 0xFFFFF000
SKF_AD_MAX = 64
BPF_MEMWORDS = 16


def _checked(insns: tuple[Insn, ...]) -> tuple[Insn, ...]:
    check_classic(insns)
    return insns


def check_classic(insns: Sequence[Insn]) -> None:
    """The kernel's bpf_check_classic, including check_load_and_stores."""
    n = len(insns)
    for pc, (code, jt, jf, k) in enumerate(insns):
        bad = None
        if code not in _ALLOWED:
            bad = f"opcode 0x{code:02x} not allowed"
        elif code in (0x34, 0x94) and k == 0:
            bad = "division by zero"
        elif code in (0x64, 0x74) and k >= 32:
            bad = "shift by 32 or more"
        elif code in (0x60, 0x61, 0x02, 0x03) and k >= BPF_MEMWORDS:
            bad = "scratch memory index out of range"
        elif code == 0x05 and k >= n - pc - 1:
            bad = "jump out of the program"
        elif code in _COND_JUMPS and (pc + jt + 1 >= n or pc + jf + 1 >= n):
            bad = "jump out of the program"
        elif code in (0x20, 0x28, 0x30) and k >= SKF_AD_OFF and (
            (k - SKF_AD_OFF) % 4 or k - SKF_AD_OFF >= SKF_AD_MAX
        ):
            bad = "unknown ancillary load"
        if bad:
            raise ExtensionError(f"bpf: instruction {pc}: {bad} (kernel: Invalid argument)")
    if insns[-1][0] not in (0x06, 0x16):
        raise ExtensionError("bpf: the last instruction must be a return "
                             "(kernel: Invalid argument)")
    _check_load_and_stores(insns)


def _check_load_and_stores(insns: Sequence[Insn]) -> None:
    """Scratch memory M[k] must be written on every path before it is read."""
    every = 0xFFFF
    masks = [every] * len(insns)
    valid = 0
    for pc, (code, jt, jf, k) in enumerate(insns):
        valid &= masks[pc]
        if code in (0x02, 0x03):
            valid |= 1 << k
        elif code in (0x60, 0x61) and not valid & (1 << k):
            raise ExtensionError(f"bpf: instruction {pc}: reads scratch memory M[{k}] "
                                 "before it is written (kernel: Invalid argument)")
        elif code == 0x05:
            masks[pc + 1 + k] &= valid
            valid = every
        elif code in _COND_JUMPS:
            masks[pc + 1 + jt] &= valid
            masks[pc + 1 + jf] &= valid
            valid = every


@register
class BpfMatch(Extension):
    """Classic/pinned BPF program match."""

    name = "bpf"
    kind = "match"
    options = (
        OptionSpec("bytecode", lambda a, c: _checked(parse_bytecode(a[0]))),
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
