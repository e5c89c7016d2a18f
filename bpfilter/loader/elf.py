"""Read llvmlite's BPF ELF object and link one program out of it.

Why our own reader: the objects are tiny relocatable ELF64 LE files with a handful of
sections; ~200 lines of ``struct`` cover what we need (section headers, symtab, strtab,
``.rel<section>``) without a dependency, and keep the rewriting rules in one place:

* ``ld_imm64`` + R_BPF_64_64 against a symbol named like a MapSpec →
  ``src_reg=BPF_PSEUDO_MAP_IDX, imm=index`` (the kernel resolves it through fd_array).
* ``call`` + R_BPF_64_32 against an *undefined* symbol → kfunc call
  (``src_reg=BPF_PSEUDO_KFUNC_CALL, imm=<BTF id in vmlinux>``).
* ``call`` with ``src_reg=BPF_PSEUDO_CALL`` (bpf-to-bpf) → the callee function is appended
  after the entry function (once), wherever it lives (``.text`` or another section), and
  the call's pc-relative ``imm`` recomputed. Only reached functions are appended: the
  verifier rejects unreachable code.
* ``ld_imm64`` + relocation against a function → ``BPF_PSEUDO_FUNC`` (callbacks, e.g. for
  ``bpf_loop``), linked the same way.

* ``ld_imm64`` + relocation against global data (.rodata*/.data*/.bss*) → one single-entry
  ARRAY map per data section, appended to the spec's maps (named like the section,
  holding its bytes as ``MapSpec.initial``; .rodata ones are BPF_F_RDONLY_PROG and frozen),
  and ``src_reg=BPF_PSEUDO_MAP_IDX_VALUE, imm=map index, next imm=offset``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import syscall as sc
from .maps import MapSpec
from .program import ProgramSpec

# ELF constants
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_NOBITS = 1, 2, 3, 9, 8
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
DATA_PREFIXES = (".rodata", ".data", ".bss")
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
SHN_UNDEF = 0
EM_BPF = 247
R_BPF_NONE, R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_32 = 0, 1, 2, 3, 10

# BPF opcodes we look at
BPF_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
BPF_CALL = 0x85  # BPF_JMP | BPF_CALL
INSN = struct.Struct("<BBhi")

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")


class ElfError(ValueError):
    """The object cannot be turned into the requested program."""


@dataclass(frozen=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    data: bytes
    link: int
    info: int
    size: int

    @property
    def executable(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)

    @property
    def is_data(self) -> bool:
        """Global variables: allocated, not code, named .rodata*/.data*/.bss*."""
        return (self.type in (SHT_PROGBITS, SHT_NOBITS) and bool(self.flags & SHF_ALLOC)
                and not self.executable and self.name.startswith(DATA_PREFIXES))


@dataclass(frozen=True)
class Symbol:
    name: str
    type: int
    bind: int
    shndx: int
    value: int
    size: int


@dataclass(frozen=True)
class Reloc:
    offset: int
    type: int
    symbol: Symbol


def _cstr(table: bytes, off: int) -> str:
    end = table.index(b"\0", off)
    return table[off:end].decode()


class ElfFile:
    """Sections, symbols and relocations of a relocatable BPF object."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ElfError("not an ELF64 little-endian object (compile for bpfel)")
        eh = _EHDR.unpack_from(data, 0)
        machine, shoff, shentsize, shnum, shstrndx = eh[2], eh[6], eh[11], eh[12], eh[13]
        if machine != EM_BPF:
            raise ElfError(f"ELF machine {machine} is not BPF ({EM_BPF})")
        raw = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        shstr = data[raw[shstrndx][4]: raw[shstrndx][4] + raw[shstrndx][5]]
        self.sections: list[Section] = []
        for i, (nm, typ, flags, _a, off, size, link, info, _al, _es) in enumerate(raw):
            body = b"" if typ == SHT_NOBITS else data[off: off + size]
            self.sections.append(Section(i, _cstr(shstr, nm), typ, flags, body, link, info,
                                         size))
        self.symbols: list[Symbol] = []
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        if symtab is not None:
            strtab = self.sections[symtab.link].data
            for off in range(0, len(symtab.data), _SYM.size):
                nm, info, _other, shndx, value, size = _SYM.unpack_from(symtab.data, off)
                name = _cstr(strtab, nm)
                if info & 0xF == STT_SECTION and not name and shndx < len(self.sections):
                    name = self.sections[shndx].name
                self.symbols.append(Symbol(name, info & 0xF, info >> 4, shndx, value, size))

    def section(self, name: str) -> Section:
        for s in self.sections:
            if s.name == name:
                return s
        names = ", ".join(s.name for s in self.sections if s.executable)
        raise ElfError(f"no section {name!r} in object (code sections: {names or 'none'})")

    def relocations(self, sec: Section) -> list[Reloc]:
        """Relocations applying to ``sec`` (from the SHT_REL section whose info is it)."""
        out: list[Reloc] = []
        for rs in self.sections:
            if rs.type == SHT_REL and rs.info == sec.index:
                for off in range(0, len(rs.data), _REL.size):
                    r_off, r_info = _REL.unpack_from(rs.data, off)
                    out.append(Reloc(r_off, r_info & 0xFFFFFFFF, self.symbols[r_info >> 32]))
        return out

    def functions(self, sec: Section) -> list[Symbol]:
        """FUNC symbols defined in ``sec``, by address."""
        fs = [s for s in self.symbols if s.type == STT_FUNC and s.shndx == sec.index]
        return sorted(fs, key=lambda s: s.value)

    def program_sections(self) -> list[str]:
        return [s.name for s in self.sections if s.executable and s.data]


# --- linking ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Unit:
    """One function: section index and [start, end) instruction indexes in it."""

    shndx: int
    start: int
    end: int


def _set_src(insns: bytearray, idx: int, src: int, imm: int) -> None:
    code, regs, off, _ = INSN.unpack_from(insns, idx * 8)
    INSN.pack_into(insns, idx * 8, code, (regs & 0x0F) | (src << 4), off, imm)


class _Linker:
    def __init__(self, elf: ElfFile, maps: Sequence[MapSpec],
                 kfunc_id: Callable[[str], int]) -> None:
        self.elf = elf
        self.maps = list(maps)
        self.map_index = {m.name: i for i, m in enumerate(maps)}
        self.data_maps: dict[int, int] = {}  # data section index → index in self.maps
        self.kfunc_id = kfunc_id
        self.units: list[_Unit] = []
        self.base: dict[_Unit, int] = {}
        self.out = bytearray()
        # (absolute insn index, target unit, target insn index inside the unit's section)
        self.fixups: list[tuple[int, _Unit, int]] = []

    def data_map(self, sec: Section) -> int:
        """Index of the map holding data section ``sec`` (created on first use)."""
        if sec.index not in self.data_maps:
            if any(r for r in self.elf.relocations(sec)):
                raise ElfError(f"data section {sec.name} holds pointers (relocations): "
                               "not supported")
            ro = sec.name.startswith(".rodata")
            body = sec.data if sec.type != SHT_NOBITS else bytes(sec.size)
            self.data_maps[sec.index] = len(self.maps)
            self.maps.append(MapSpec(sec.name, sc.BPF_MAP_TYPE_ARRAY, 4, max(sec.size, 1), 1,
                                     sc.BPF_F_RDONLY_PROG if ro else 0,
                                     initial=body.ljust(max(sec.size, 1), b"\0"), frozen=ro))
        return self.data_maps[sec.index]

    def unit_at(self, shndx: int, idx: int) -> _Unit:
        """The function containing instruction ``idx`` of section ``shndx``."""
        sec = self.elf.sections[shndx]
        n = len(sec.data) // 8
        starts = sorted({f.value // 8 for f in self.elf.functions(sec)} | {0})
        start = max(s for s in starts if s <= idx)
        later = [s for s in starts if s > start]
        end = later[0] if later else n
        return _Unit(shndx, start, end)

    def add(self, unit: _Unit) -> None:
        """Queue ``unit`` for emission (once); its base is fixed when it is emitted."""
        if unit not in self.units:
            self.units.append(unit)

    def link(self, entry: _Unit) -> bytes:
        self.add(entry)
        i = 0
        while i < len(self.units):  # units appended while we go
            self._emit(self.units[i])
            i += 1
        for at, unit, target in self.fixups:
            abs_target = self.base[unit] + (target - unit.start)
            code, regs, off, _ = INSN.unpack_from(self.out, at * 8)
            INSN.pack_into(self.out, at * 8, code, regs, off, abs_target - at - 1)
        return bytes(self.out)

    def _emit(self, unit: _Unit) -> None:
        sec = self.elf.sections[unit.shndx]
        body = bytearray(sec.data[unit.start * 8: unit.end * 8])
        base = self.base[unit] = len(self.out) // 8
        relocs = {r.offset // 8: r for r in self.elf.relocations(sec)
                  if unit.start <= r.offset // 8 < unit.end}
        n = unit.end - unit.start
        j = 0
        while j < n:
            idx = unit.start + j
            code, regs, _off, imm = INSN.unpack_from(body, j * 8)
            src = regs >> 4
            rel = relocs.get(idx)
            if rel is not None:
                self._relocate(body, j, base, rel, code, imm, sec)
            elif code == BPF_CALL and src == sc.BPF_PSEUDO_CALL:
                # call to a function in the same section, already pc-relative
                target = idx + imm + 1
                self._call_to(base + j, unit.shndx, target)
            j += 2 if code == BPF_LD_IMM64 else 1
        self.out += body

    def _call_to(self, at: int, shndx: int, target: int) -> None:
        sec = self.elf.sections[shndx]
        if not sec.executable or not 0 <= target < len(sec.data) // 8:
            raise ElfError(f"call to instruction {target} outside code section {sec.name}")
        unit = self.unit_at(shndx, target)
        self.add(unit)
        self.fixups.append((at, unit, target))

    def _relocate(self, body: bytearray, j: int, base: int, rel: Reloc, code: int,
                  imm: int, sec: Section) -> None:
        sym = rel.symbol
        where = f"{sec.name}+{rel.offset:#x}"
        if code == BPF_LD_IMM64:
            if sym.name in self.map_index and sym.type != STT_FUNC:
                _set_src(body, j, sc.BPF_PSEUDO_MAP_IDX, self.map_index[sym.name])
                _set_src(body, j + 1, 0, 0)
                return
            tsec = self.elf.sections[sym.shndx] if sym.shndx != SHN_UNDEF and \
                sym.shndx < len(self.elf.sections) else None
            if tsec is not None and tsec.executable:
                target = (sym.value + imm) // 8
                _set_src(body, j, sc.BPF_PSEUDO_FUNC, 0)
                self._call_to(base + j, sym.shndx, target)
                return
            if tsec is not None and tsec.is_data:
                _set_src(body, j, sc.BPF_PSEUDO_MAP_IDX_VALUE, self.data_map(tsec))
                _set_src(body, j + 1, 0, sym.value + imm)
                return
            known = ", ".join(self.map_index) or "none"
            raise ElfError(f"{where}: reference to unknown symbol {sym.name!r} "
                           f"(maps in spec: {known})")
        if code == BPF_CALL:
            if sym.shndx == SHN_UNDEF:
                try:
                    btf_id = self.kfunc_id(sym.name)
                except KeyError:
                    raise ElfError(f"{where}: call to unknown function {sym.name!r} "
                                   "(not a kfunc in vmlinux BTF)") from None
                code_, regs, _o, _i = INSN.unpack_from(body, j * 8)
                INSN.pack_into(body, j * 8, code_, (regs & 0x0F)
                               | (sc.BPF_PSEUDO_KFUNC_CALL << 4), 0, btf_id)
                return
            target = sym.value // 8 + imm + 1
            _set_src(body, j, sc.BPF_PSEUDO_CALL, 0)
            self._call_to(base + j, sym.shndx, target)
            return
        raise ElfError(f"{where}: unsupported relocation type {rel.type} against "
                       f"{sym.name!r} on opcode {code:#x}")


def _default_kfunc_id(name: str) -> int:
    from .btf import kfunc_btf_id  # lazy: parsing vmlinux BTF is only needed for kfuncs

    return kfunc_btf_id(name)


def link_program(elf: bytes | ElfFile, section: str, entry: str | None = None,
                 maps: Sequence[MapSpec] = (),
                 kfunc_id: Callable[[str], int] = _default_kfunc_id) -> bytes:
    """Instructions of the program in ``section`` (entry function ``entry`` if given, else
    the function at the section start), relocated and linked with its callees.

    ``kfunc_id`` maps a kfunc name to its BTF id (raises KeyError if unknown).
    """
    return _link(elf, section, entry, maps, kfunc_id)[0]


def _link(elf: bytes | ElfFile, section: str, entry: str | None, maps: Sequence[MapSpec],
          kfunc_id: Callable[[str], int]) -> tuple[bytes, list[MapSpec]]:
    ef = elf if isinstance(elf, ElfFile) else ElfFile(elf)
    sec = ef.section(section)
    if not sec.executable or not sec.data:
        raise ElfError(f"section {section!r} holds no code")
    start = 0
    if entry is not None:
        f = next((f for f in ef.functions(sec) if f.name == entry), None)
        if f is not None:
            start = f.value // 8
    linker = _Linker(ef, maps, kfunc_id)
    return linker.link(linker.unit_at(sec.index, start)), linker.maps


def program_spec_from_elf(elf: bytes, section: str, name: str, prog_type: int,
                          expected_attach_type: int = 0, maps: Sequence[MapSpec] = (),
                          license: str = "GPL",
                          kfunc_id: Callable[[str], int] = _default_kfunc_id) -> ProgramSpec:
    """The loadable ProgramSpec for the program in ``section`` of llvmlite's ELF ``elf``.

    ``name`` is the program's name and, if a function of that name is in the section, its
    entry point. Map references resolve to indexes in ``maps`` (symbol name ==
    MapSpec.name); global data sections the program uses become extra maps after ``maps``.
    """
    insns, all_maps = _link(elf, section, name, maps, kfunc_id)
    return ProgramSpec(name=name, prog_type=prog_type, insns=insns, maps=tuple(all_maps),
                       expected_attach_type=expected_attach_type, license=license)
