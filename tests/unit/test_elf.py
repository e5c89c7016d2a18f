"""ELF reading and relocation rewriting on objects llvmlite really emits (no kernel)."""

from __future__ import annotations

import struct

import pytest

from bpfilter.loader import syscall as sc
from bpfilter.loader.elf import (
    BPF_CALL,
    BPF_LD_IMM64,
    INSN,
    ElfError,
    ElfFile,
    link_program,
    program_spec_from_elf,
)
from bpfilter.loader.maps import MapSpec
from bpfilter.loader.toolchain import compile_ir

MAPS = (
    MapSpec("verdicts", sc.BPF_MAP_TYPE_ARRAY, 4, 4, 1),
    MapSpec("counters", sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 8),
)

IR = r"""
@verdicts = external global i8
@counters = external global i8

declare ptr @bpf_some_kfunc(ptr, i32)

define internal i32 @in_text(i32 %x) noinline nounwind {
  %y = add i32 %x, 7
  ret i32 %y
}

define i32 @global_text(i32 %x) noinline nounwind {
  %y = xor i32 %x, 3
  ret i32 %y
}

define i32 @unused(i32 %x) noinline nounwind {
  %y = mul i32 %x, 5
  ret i32 %y
}

define i32 @xdp_main(ptr %ctx) nounwind section "xdp" {
entry:
  %k = alloca i32
  store i32 0, ptr %k
  %v = call ptr inttoptr (i64 1 to ptr)(ptr @verdicts, ptr %k)
  %c = call ptr inttoptr (i64 1 to ptr)(ptr @counters, ptr %k)
  %kf = call ptr @bpf_some_kfunc(ptr %ctx, i32 1)
  %miss = icmp eq ptr %v, null
  br i1 %miss, label %pass, label %hit
hit:
  %x = load volatile i32, ptr %v
  %a = call i32 @in_text(i32 %x)
  %b = call i32 @global_text(i32 %a)
  ret i32 %b
pass:
  ret i32 2
}
"""


def insns(code: bytes) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) per 8-byte slot."""
    out = []
    for i in range(len(code) // 8):
        op, regs, off, imm = INSN.unpack_from(code, i * 8)
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def fake_kfunc(name: str) -> int:
    if name == "bpf_some_kfunc":
        return 4242
    raise KeyError(name)


@pytest.fixture(scope="module")
def obj() -> bytes:
    return compile_ir(IR)


def test_elf_sections_and_symbols(obj: bytes) -> None:
    ef = ElfFile(obj)
    assert "xdp" in ef.program_sections()
    assert ".text" in ef.program_sections()
    names = {s.name for s in ef.symbols}
    assert {"verdicts", "counters", "bpf_some_kfunc", "xdp_main", "global_text"} <= names
    relocs = ef.relocations(ef.section("xdp"))
    assert {r.symbol.name for r in relocs} >= {"verdicts", "counters", "bpf_some_kfunc"}


def test_map_references_become_map_idx(obj: bytes) -> None:
    spec = program_spec_from_elf(obj, "xdp", "xdp_main", sc.BPF_PROG_TYPE_XDP, sc.BPF_XDP,
                                 MAPS, kfunc_id=fake_kfunc)
    lds = [i for i in insns(spec.insns) if i[0] == BPF_LD_IMM64]
    assert sorted((src, imm) for _, _, src, _, imm in lds) == [
        (sc.BPF_PSEUDO_MAP_IDX, 0), (sc.BPF_PSEUDO_MAP_IDX, 1)]
    assert spec.maps == MAPS
    assert spec.expected_attach_type == sc.BPF_XDP


def test_helper_calls_untouched_and_kfunc_rewritten(obj: bytes) -> None:
    code = link_program(obj, "xdp", "xdp_main", MAPS, kfunc_id=fake_kfunc)
    calls = [(src, imm) for op, _, src, _, imm in insns(code) if op == BPF_CALL]
    assert calls.count((0, 1)) == 2  # two bpf_map_lookup_elem helper calls
    assert (sc.BPF_PSEUDO_KFUNC_CALL, 4242) in calls


def test_bpf_to_bpf_calls_linked_and_unused_dropped(obj: bytes) -> None:
    code = link_program(obj, "xdp", "xdp_main", MAPS, kfunc_id=fake_kfunc)
    ins = insns(code)
    local = [(i, imm) for i, (op, _, src, _, imm) in enumerate(ins)
             if op == BPF_CALL and src == sc.BPF_PSEUDO_CALL]
    assert len(local) == 2
    targets = set()
    for at, imm in local:
        t = at + imm + 1
        assert 0 <= t < len(ins)
        targets.add(t)
        # each callee: "w0 = w1; w0 op= K; exit" with K identifying it
        assert ins[t + 2][0] == 0x95  # exit
    consts = {ins[t + 1][4] for t in targets}
    assert consts == {7, 3}  # in_text adds 7, global_text xors 3; `unused` (5) not linked
    assert all(imm != 5 for *_, imm in ins)
    # the entry comes first
    assert ins[0][0] != 0x95


def test_unknown_map_symbol_is_clear_error(obj: bytes) -> None:
    with pytest.raises(ElfError, match=r"unknown symbol 'counters'.*verdicts"):
        link_program(obj, "xdp", "xdp_main", MAPS[:1], kfunc_id=fake_kfunc)


def test_unknown_kfunc_is_clear_error(obj: bytes) -> None:
    def none(name: str) -> int:
        raise KeyError(name)

    with pytest.raises(ElfError, match="unknown function 'bpf_some_kfunc'"):
        link_program(obj, "xdp", "xdp_main", MAPS, kfunc_id=none)


def test_missing_section_names_the_code_sections(obj: bytes) -> None:
    with pytest.raises(ElfError, match=r"no section 'tc'.*xdp"):
        link_program(obj, "tc", None, MAPS, kfunc_id=fake_kfunc)


def test_global_data_becomes_array_maps() -> None:
    ir_text = r"""
    @ro = internal constant [2 x i32] [i32 11, i32 22]
    @rw = internal global i32 5
    @zero = internal global i64 0
    define i32 @p(ptr %ctx) nounwind section "xdp" {
      %i = load volatile i32, ptr %ctx
      %pr = getelementptr [2 x i32], ptr @ro, i32 0, i32 %i
      %a = load volatile i32, ptr %pr
      %b = load volatile i32, ptr @rw
      %c = load volatile i64, ptr @zero
      %c32 = trunc i64 %c to i32
      %s = add i32 %a, %b
      %t = add i32 %s, %c32
      ret i32 %t
    }
    """
    spec = program_spec_from_elf(compile_ir(ir_text), "xdp", "p", sc.BPF_PROG_TYPE_XDP,
                                 maps=MAPS[:1], kfunc_id=fake_kfunc)
    assert spec.maps[0] == MAPS[0]
    data = {m.name: m for m in spec.maps[1:]}
    assert set(data) == {".rodata", ".data", ".bss"}
    ro = data[".rodata"]
    assert ro.initial == struct.pack("<ii", 11, 22) and ro.frozen
    assert ro.flags & sc.BPF_F_RDONLY_PROG and ro.max_entries == 1
    assert data[".data"].initial == struct.pack("<i", 5) and not data[".data"].frozen
    assert data[".bss"].initial == bytes(8)
    ins = insns(spec.insns)
    refs = {imm for op, _, src, _, imm in ins
            if op == BPF_LD_IMM64 and src == sc.BPF_PSEUDO_MAP_IDX_VALUE}
    assert refs == {spec.maps.index(m) for m in data.values()}


def test_not_elf() -> None:
    with pytest.raises(ElfError):
        ElfFile(b"\0" * 64)


def test_compile_is_deterministic() -> None:
    assert compile_ir(IR) == compile_ir(IR)


def test_insn_packing_roundtrip() -> None:
    raw = struct.pack("<BBhi", BPF_CALL, 0x20, 0, 99)
    assert insns(raw) == [(BPF_CALL, 0, 2, 0, 99)]
