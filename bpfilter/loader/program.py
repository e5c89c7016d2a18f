"""BPF programs: a pure ProgramSpec (instructions + the maps they name) and a live Program.

Why split: the spec is what codegen produces and unit tests compare byte for byte; the
Program is an fd that exists only after the verifier accepted the spec.

Map references in the instructions use BPF_PSEUDO_MAP_IDX: ``ld_imm64`` with src_reg 5
and imm = index into ``ProgramSpec.maps``; at load the kernel reads the fd from
``fd_array[index]`` (kernel >= 5.14), so the instructions never need patching with fds.

NOTES — netfilter programs (BPF_PROG_TYPE_NETFILTER), verified on kernel 6.18 by
tests/kernel/test_loader_hooks.py:

* Load with ``expected_attach_type=BPF_NETFILTER``. The return value must be provably
  0 (NF_DROP) or 1 (NF_ACCEPT), else the verifier rejects ("should have been in [0, 1]").
* ctx is ``struct bpf_nf_ctx { const struct nf_hook_state *state; struct sk_buff *skb; }``
  (state at 0, skb at 8). ``ctx->skb`` loads as a trusted ``struct sk_buff *``: its
  scalar fields (``len``, ``protocol``, ``mark``, ``network_header``…) can be read with
  plain loads at offsets from vmlinux BTF (btf.struct_member_offset). Pointer members
  (``head``, ``data``) must be loaded as whole 64-bit values: a split 32-bit load is
  refused ("cannot access ptr member head ... size 4") — toolchain.py puts the data
  layout in the IR before parsing so i64 loads are 8-byte aligned and never split.
* Packet bytes: **skb->data points at the L3 (IP/IPv6) header** at every hook, so the IP
  header is at offset 0 of all three methods below, which all work in nf programs:
    1. kfunc ``bpf_dynptr_from_skb(skb, 0, &dynptr)`` (``struct bpf_dynptr`` = 16-byte,
       8-aligned stack slot) then helper 201 ``bpf_dynptr_read(dst, len, &dynptr, off, 0)``
       — copies, handles non-linear skbs; returns 0 or -errno (e.g. past the end).
    2. kfunc ``bpf_dynptr_slice(&dynptr, off, buf, const len)`` → pointer to ``len``
       bytes (in the packet or copied to ``buf``) or NULL; cheapest for headers.
    3. helper 113 ``bpf_probe_read_kernel(dst, len, skb->data + off)`` (linear part
       only; needs CAP_PERFMON, which root has).
  Recommended: 1 or 2 (dynptr), which also copes with paged data. Declare kfuncs as
  external functions in the IR (see toolchain.py).
* Conntrack in nf programs: ``skb->_nfct`` (BTF offset) holds ``struct nf_conn * | ctinfo``
  (low 3 bits = enum ip_conntrack_info); read nf_conn fields with probe_read_kernel.
* BPF_PROG_TEST_RUN for nf: ``ctx_in`` is a ``struct nf_hook_state`` with only ``hook``
  (u8 at 0) and ``pf`` (u8 at 1) set — see :func:`nf_test_ctx`. Without ctx_in the kernel
  uses NF_INET_LOCAL_OUT/IPv4. For LOCAL_OUT ``data`` is the bare IP packet; for every
  other hook ``data`` must start with an Ethernet header whose ethertype matches ``pf``
  (the kernel runs eth_type_trans on it and the program sees the skb from the IP header
  on; skb->len excludes the 14 bytes). Mismatch → EINVAL; unknown ethertype → EPROTO.
  ``data_out`` is not returned for nf programs. In test_run, skb->network_header is only
  set for hooks other than LOCAL_OUT — use skb->data (above), not network_header.
* Swapping programs: BPF_LINK_UPDATE works for XDP and TCX links but a *netfilter* link
  answers EOPNOTSUPP (kernel 6.18). For an atomic ruleset swap at a netfilter hook attach
  a small dispatcher that does ``bpf_tail_call(ctx, progs, 0)`` (helper 12) through a
  BPF_MAP_TYPE_PROG_ARRAY and returns NF_ACCEPT when the slot is empty; replacing
  ``progs[0]`` (value = new program fd) is the atomic swap (tested in
  test_loader_links.py). Link priority must not be INT_MIN/INT_MAX.
* LLVM's BPF backend cannot do dynamic stack allocation: every ``alloca`` must be in the
  entry block.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from . import syscall as sc
from .fdobj import FdObject
from .maps import Map, MapSpec

NF_HOOK_STATE_SIZE = 48  # sizeof(struct nf_hook_state) on 64-bit (btf.type_size checks it)


def nf_test_ctx(hook: int, pf: int = sc.NFPROTO_IPV4) -> bytes:
    """``ctx_in`` for test-running a netfilter program as if at ``hook`` (NF_INET_*) for
    family ``pf`` (NFPROTO_IPV4/IPV6): a zeroed ``struct nf_hook_state`` with hook and pf."""
    return bytes([hook, pf]) + bytes(NF_HOOK_STATE_SIZE - 2)


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
        if self.prog_type == sc.BPF_PROG_TYPE_NETFILTER and not self.expected_attach_type:
            # the kernel refuses netfilter programs without it (EINVAL)
            object.__setattr__(self, "expected_attach_type", sc.BPF_NETFILTER)

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


def create_maps(spec: ProgramSpec) -> list[Map]:
    """A fresh Map for each of ``spec.maps`` (global-data maps get their contents)."""
    made: list[Map] = []
    try:
        for ms in spec.maps:
            made.append(Map.create(ms))
    except BaseException:
        for m in made:
            m.close()
        raise
    return made


def verifier_log(spec: ProgramSpec, maps: Sequence[Map] = (), log_level: int = 1) -> str:
    """The verifier's log for ``spec`` (the program is loaded and closed again): for
    reading why a program is slow to verify ("processed N insns") while developing
    codegen. log_level 2 also prints every state, 4 only the statistics."""
    return sc.prog_verifier_log(spec.prog_type, spec.insns, spec.license, spec.name,
                                spec.expected_attach_type, [m.fd for m in maps], log_level)


def _compatible(spec: MapSpec, live: MapSpec) -> bool:
    return (spec.map_type, spec.key_size, spec.value_size) == (
        live.map_type, live.key_size, live.value_size)


class Program(FdObject):
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
        """Run on ``data`` via BPF_PROG_TEST_RUN (nf programs: see NOTES, nf_test_ctx)."""
        out = sc.prog_test_run(self.fd, data, ctx_in=ctx_in, ctx_size_out=ctx_size_out,
                               repeat=repeat)
        return TestRunResult(out.retval, out.duration_ns, out.data_out, out.ctx_out)

    def __repr__(self) -> str:
        return f"Program({self.name!r}, fd={self.fd})"
