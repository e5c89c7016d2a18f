"""Minimal reader of the kernel's BTF (/sys/kernel/btf/vmlinux).

Why: kfunc calls need the kfunc's BTF type id, and programs that read kernel structs
(``struct nf_conn``, ``struct sk_buff``) need member offsets of *this* kernel. We only
need three questions answered, so a ~150-line reader beats a dependency.

Speed: vmlinux BTF is ~5.5 MB with ~126k types. We walk the type section once to record
where each type starts plus its name offset and info word (measured: 0.06 s), build a
name-offset index on the first query (0.03 s), and decode strings only for the names
asked about (then microseconds per query). The parsed object is cached per path.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

# BTF_KIND_*
BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_STRUCT, BTF_KIND_UNION = 1, 2, 3, 4, 5
BTF_KIND_ENUM, BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST = 6, 7, 8, 9, 10
BTF_KIND_RESTRICT, BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO, BTF_KIND_VAR = 11, 12, 13, 14
BTF_KIND_DATASEC, BTF_KIND_FLOAT, BTF_KIND_DECL_TAG, BTF_KIND_TYPE_TAG = 15, 16, 17, 18
BTF_KIND_ENUM64 = 19

# bytes after the 12-byte common header: >= 0 fixed, < 0 means -(bytes per vlen item)
_EXTRA = {
    BTF_KIND_INT: 4, BTF_KIND_PTR: 0, BTF_KIND_ARRAY: 12, BTF_KIND_STRUCT: -12,
    BTF_KIND_UNION: -12, BTF_KIND_ENUM: -8, BTF_KIND_FWD: 0, BTF_KIND_TYPEDEF: 0,
    BTF_KIND_VOLATILE: 0, BTF_KIND_CONST: 0, BTF_KIND_RESTRICT: 0, BTF_KIND_FUNC: 0,
    BTF_KIND_FUNC_PROTO: -8, BTF_KIND_VAR: 4, BTF_KIND_DATASEC: -12, BTF_KIND_FLOAT: 0,
    BTF_KIND_DECL_TAG: 4, BTF_KIND_TYPE_TAG: 0, BTF_KIND_ENUM64: -12,
}
_MODIFIERS = {BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT,
              BTF_KIND_TYPE_TAG}
_SIZED = {BTF_KIND_INT, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_FLOAT,
          BTF_KIND_ENUM64}

_HDR = struct.Struct("<HBBIIIII")
_II = struct.Struct("<II")
_III = struct.Struct("<III")


class BtfError(ValueError):
    """Malformed BTF."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 when not a bitfield


class Btf:
    """One parsed BTF blob (type ids start at 1; id 0 is void)."""

    def __init__(self, data: bytes) -> None:
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            _HDR.unpack_from(data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x}")
        self._types = memoryview(data)[hdr_len + type_off: hdr_len + type_off + type_len]
        self._strs = bytes(data[hdr_len + str_off: hdr_len + str_off + str_len])
        offs, names, infos = [0], [0], [0]
        p, n, types = 0, len(self._types), self._types
        unpack = _II.unpack_from
        while p < n:
            name_off, info = unpack(types, p)
            offs.append(p)
            names.append(name_off)
            infos.append(info)
            extra = _EXTRA.get((info >> 24) & 0x1F)
            if extra is None:
                raise BtfError(f"unknown BTF kind {(info >> 24) & 0x1F} at type {len(offs) - 1}")
            p += 12 + (extra if extra >= 0 else -extra * (info & 0xFFFF))
        self._offs, self._names, self._infos = offs, names, infos
        self._by_name: dict[int, list[int]] | None = None

    # --- raw access -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._offs) - 1

    def kind(self, tid: int) -> int:
        return (self._infos[tid] >> 24) & 0x1F

    def name(self, tid: int) -> str:
        return self._str(self._names[tid])

    def _str(self, off: int) -> str:
        return self._strs[off: self._strs.index(b"\0", off)].decode()

    def _size_or_type(self, tid: int) -> int:
        return int(_II.unpack_from(self._types, self._offs[tid] + 8)[0])

    def _ids_named(self, name: str) -> list[int]:
        """Type ids whose name is ``name`` (strings located by search, decoded lazily)."""
        if self._by_name is None:
            idx: dict[int, list[int]] = {}
            for tid, off in enumerate(self._names):
                if off:
                    idx.setdefault(off, []).append(tid)
            self._by_name = idx
        needle, out, start = b"\0" + name.encode() + b"\0", [], 0
        while (pos := self._strs.find(needle, start)) >= 0:
            out += self._by_name.get(pos + 1, [])
            start = pos + 1
        return sorted(out)

    def find(self, name: str, kinds: set[int] | frozenset[int]) -> int:
        """The first type id named ``name`` whose kind is in ``kinds``; KeyError if none."""
        for tid in self._ids_named(name):
            if self.kind(tid) in kinds:
                return tid
        raise KeyError(name)

    def resolve(self, tid: int) -> int:
        """Skip typedef/const/volatile/restrict/type_tag."""
        while tid and self.kind(tid) in _MODIFIERS:
            tid = self._size_or_type(tid)
        return tid

    def members(self, tid: int) -> list[Member]:
        """Members of a struct/union type."""
        if self.kind(tid) not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            raise TypeError(f"type {tid} ({self.name(tid)!r}) is not a struct or union")
        info = self._infos[tid]
        kflag, vlen, base = info >> 31, info & 0xFFFF, self._offs[tid] + 12
        out = []
        for i in range(vlen):
            name_off, mtype, off = _III.unpack_from(self._types, base + 12 * i)
            bits, bsize = (off & 0xFFFFFF, off >> 24) if kflag else (off, 0)
            out.append(Member(self._str(name_off), mtype, bits, bsize))
        return out

    def size(self, tid: int) -> int:
        """Size in bytes of a type (typedefs resolved; pointers are 8)."""
        tid = self.resolve(tid)
        kind = self.kind(tid)
        if kind in _SIZED:
            return self._size_or_type(tid)
        if kind == BTF_KIND_PTR:
            return 8
        if kind == BTF_KIND_ARRAY:
            elem, _index, nelems = _III.unpack_from(self._types, self._offs[tid] + 12)
            return self.size(elem) * nelems
        raise TypeError(f"type {tid} ({self.name(tid)!r}) of kind {kind} has no size")

    # --- the questions loaders ask ----------------------------------------------------

    def kfunc_btf_id(self, name: str) -> int:
        """BTF id of the function ``name`` (BTF_KIND_FUNC); KeyError if absent."""
        return self.find(name, {BTF_KIND_FUNC})

    def struct_id(self, name: str) -> int:
        return self.find(name, {BTF_KIND_STRUCT, BTF_KIND_UNION})

    def member_bit_offset(self, struct_name: str, member: str) -> tuple[int, int]:
        """(bit offset, member type id) of ``member`` (dotted path allowed: ``a.b``),
        looking through anonymous struct/union members."""
        tid, bits = self.struct_id(struct_name), 0
        for part in member.split("."):
            found = self._find_member(self.resolve(tid), part)
            if found is None:
                raise KeyError(f"{struct_name}.{member}")
            off, tid = found
            bits += off
        return bits, tid

    def _find_member(self, tid: int, name: str) -> tuple[int, int] | None:
        if self.kind(tid) not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            return None
        for m in self.members(tid):
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name:  # anonymous struct/union: search inside
                inner = self._find_member(self.resolve(m.type_id), name)
                if inner is not None:
                    return m.bit_offset + inner[0], inner[1]
        return None

    def struct_member_offset(self, struct_name: str, member: str) -> int:
        """Byte offset of ``member`` in ``struct struct_name``; ValueError for bitfields."""
        bits, _ = self.member_bit_offset(struct_name, member)
        if bits % 8:
            raise ValueError(f"{struct_name}.{member} is a bitfield (bit offset {bits})")
        return bits // 8

    def type_size(self, name: str) -> int:
        """Size of the named struct/union/typedef/int/enum/float."""
        return self.size(self.find(name, _SIZED | {BTF_KIND_TYPEDEF}))


@functools.cache
def load(path: str = VMLINUX_BTF) -> Btf:
    """The parsed BTF at ``path``, cached for the process."""
    with open(path, "rb") as f:
        return Btf(f.read())


def kfunc_btf_id(name: str) -> int:
    """BTF id of kernel function ``name`` in vmlinux (KeyError if absent)."""
    return load().kfunc_btf_id(name)


def struct_member_offset(struct_name: str, member: str) -> int:
    """Byte offset of ``member`` (dotted path ok) in vmlinux's ``struct struct_name``."""
    return load().struct_member_offset(struct_name, member)


def type_size(name: str) -> int:
    """Size in bytes of vmlinux type ``name``."""
    return load().type_size(name)
