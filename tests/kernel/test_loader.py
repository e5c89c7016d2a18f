"""Loader against the real kernel: maps, XDP load + test_run, verifier errors.

Needs root and bpf(); nothing here attaches to an interface, so no netns is needed
(maps and unattached programs are not visible to traffic).
"""

from __future__ import annotations

import struct

import pytest

from bpfilter.loader import syscall as sc
from bpfilter.loader.elf import program_spec_from_elf
from bpfilter.loader.maps import Map, MapSpec
from bpfilter.loader.program import Program, ProgramSpec, create_maps, verifier_log
from bpfilter.loader.toolchain import EXAMPLE_XDP_IR, compile_ir
from tests.kernel_required import kernel  # noqa: F401  (fixture)

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("kernel")]

U32 = struct.Struct("<I")


def k(i: int) -> bytes:
    return U32.pack(i)


# --- maps -------------------------------------------------------------------------------

def test_array_map_update_lookup_iterate() -> None:
    with Map.create(MapSpec("arr", sc.BPF_MAP_TYPE_ARRAY, 4, 8, 4)) as m:
        assert m.lookup(k(0)) == b"\0" * 8  # arrays are preallocated, zeroed
        m.update(k(2), b"abcdefgh")
        assert m.lookup(k(2)) == b"abcdefgh"
        assert m.lookup(k(4)) is None  # out of range reads as absent
        assert list(m.keys()) == [k(0), k(1), k(2), k(3)]
        assert m.info.max_entries == 4 and m.info.name == "arr"


def test_hash_map_crud() -> None:
    with Map.create(MapSpec("h", sc.BPF_MAP_TYPE_HASH, 4, 4, 16)) as m:
        assert m.lookup(k(1)) is None
        for i in range(5):
            m.update(k(i), k(i * 10))
        assert m.lookup(k(3)) == k(30)
        assert sorted(m.keys()) == sorted(k(i) for i in range(5))
        assert m.delete(k(3)) is True
        assert m.delete(k(3)) is False
        assert m.lookup(k(3)) is None
        with pytest.raises(sc.BpfError) as ei:
            m.update(k(1), k(0), flags=sc.BPF_NOEXIST)
        assert ei.value.errno == 17  # EEXIST
        assert "update map" in str(ei.value)
        assert dict(m.items())[k(4)] == k(40)


def test_percpu_array_values_per_cpu() -> None:
    spec = MapSpec("pc", sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 12, 2)
    n = sc.possible_cpus()
    with Map.create(spec) as m:
        vals = [bytes([c]) * 12 for c in range(n)]
        m.update(k(1), vals)
        assert m.lookup_percpu(k(1)) == vals
        m.update(k(0), b"x" * 12)
        assert m.lookup_percpu(k(0)) == [b"x" * 12] * n
        with pytest.raises(TypeError):
            m.lookup(k(0))


def test_lpm_trie_longest_prefix() -> None:
    # key: u32 prefixlen + 4 address bytes (network order)
    spec = MapSpec("lpm", sc.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16)
    assert spec.flags & sc.BPF_F_NO_PREALLOC

    def key(plen: int, a: str) -> bytes:
        return U32.pack(plen) + bytes(int(x) for x in a.split("."))

    with Map.create(spec) as m:
        m.update(key(8, "10.0.0.0"), k(8))
        m.update(key(24, "10.1.2.0"), k(24))
        assert m.lookup(key(32, "10.1.2.3")) == k(24)
        assert m.lookup(key(32, "10.9.9.9")) == k(8)
        assert m.lookup(key(32, "11.0.0.1")) is None
        assert len(list(m.keys())) == 2
        assert m.delete(key(24, "10.1.2.0"))
        assert m.lookup(key(32, "10.1.2.3")) == k(8)


def test_map_from_id_reads_spec_back() -> None:
    with Map.create(MapSpec("byid", sc.BPF_MAP_TYPE_HASH, 8, 16, 3)) as m:
        with Map.from_id(m.info.id) as again:
            assert again.spec == MapSpec("byid", sc.BPF_MAP_TYPE_HASH, 8, 16, 3)
            again.update(b"k" * 8, b"v" * 16)
            assert m.lookup(b"k" * 8) == b"v" * 16


# --- XDP program made with llvmlite ---------------------------------------------------------

XDP_IR = EXAMPLE_XDP_IR  # the documented example, kept working

VERDICTS = MapSpec("verdicts", sc.BPF_MAP_TYPE_ARRAY, 4, 4, 1)


def xdp_spec() -> ProgramSpec:
    return program_spec_from_elf(compile_ir(XDP_IR), "xdp", "xdp_main",
                                 sc.BPF_PROG_TYPE_XDP, sc.BPF_XDP, [VERDICTS])


def test_xdp_program_reads_map_verdict() -> None:
    frame = bytes(range(64))
    with Map.create(VERDICTS) as m, Program.load(xdp_spec(), [m]) as p:
        assert p.test_run(frame).retval == sc.XDP_ABORTED  # array value 0
        m.update(k(0), k(sc.XDP_DROP))
        r = p.test_run(frame, repeat=10)
        assert r.retval == sc.XDP_DROP
        m.update(k(0), k(sc.XDP_PASS))
        r = p.test_run(frame)
        assert r.retval == sc.XDP_PASS
        assert r.data_out == frame
        info = p.info
        assert info.type == sc.BPF_PROG_TYPE_XDP
        assert info.name == "xdp_main"
        assert info.map_ids == (m.info.id,)


def test_load_checks_maps_against_spec() -> None:
    with Map.create(MapSpec("verdicts", sc.BPF_MAP_TYPE_HASH, 4, 4, 1)) as wrong:
        with pytest.raises(ValueError, match="does not match"):
            Program.load(xdp_spec(), [wrong])
    with pytest.raises(ValueError, match="1 maps in spec, 0 given"):
        Program.load(xdp_spec(), [])


def test_verifier_rejection_carries_log() -> None:
    # r0 = *(u32 *)(r2 + 0): r2 is uninitialised → "R2 !read_ok"
    bad = struct.pack("<BBhi", 0x61, 0x20, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    spec = ProgramSpec("bad_prog", sc.BPF_PROG_TYPE_XDP, bad,
                       expected_attach_type=sc.BPF_XDP)
    with pytest.raises(sc.BpfError) as ei:
        Program.load(spec, [])
    e = ei.value
    assert e.errno == 13  # EACCES
    assert e.what == "load program bad_prog"
    assert "R2 !read_ok" in e.log
    text = str(e)
    assert text.startswith("load program bad_prog: Permission denied (EACCES)\n")
    assert "R2 !read_ok" in text


def test_missing_exit_is_einval_with_log() -> None:
    spec = ProgramSpec("noexit", sc.BPF_PROG_TYPE_XDP, struct.pack("<BBhi", 0xb7, 0, 0, 0))
    with pytest.raises(sc.BpfError) as ei:
        Program.load(spec, [])
    assert ei.value.errno == 22
    assert ei.value.log  # the verifier says why (falls off the end / jump out of range)


def test_long_verifier_log_grows_buffer_and_keeps_errno() -> None:
    # 30k logged instructions overflow the first 64 KiB log buffer (ENOSPC internally)
    add = struct.pack("<BBhi", 0x07, 1, 0, 1)  # r1 += 1
    code = (struct.pack("<BBhi", 0xB7, 1, 0, 0) + add * 30000
            + struct.pack("<BBhi", 0x61, 0x20, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0))
    with pytest.raises(sc.BpfError) as ei:
        sc.prog_load(sc.BPF_PROG_TYPE_XDP, code, name="biglog")
    e = ei.value
    assert e.errno == 13  # EACCES, not the log's ENOSPC
    assert len(e.log) > sc.LOG_SIZE_START
    assert e.log_tail[-2] == "R2 !read_ok"
    assert len(e.log_tail) == sc.LOG_TAIL_LINES


def test_get_fd_by_id_and_ids_listing() -> None:
    with Map.create(VERDICTS) as m, Program.load(xdp_spec(), [m]) as p:
        pid = p.info.id
        assert pid in sc.prog_ids()
        assert m.info.id in sc.map_ids()
        with Program.from_id(pid) as again:
            assert again.info.tag == p.info.tag
            (mm,) = again.maps()
            with mm:
                assert mm.spec == VERDICTS


GLOBALS_IR = r"""
@table = internal constant [8 x i32] [i32 101, i32 202, i32 303, i32 404,
                                      i32 505, i32 606, i32 707, i32 808]
@runs = internal global i64 0
@seen = global i32 7  ; not internal: a store-only internal global is optimised away

define i32 @xdp_globals(ptr %ctx) nounwind section "xdp" {
  %old = atomicrmw add ptr @runs, i64 1 seq_cst
  %i = and i64 %old, 7
  %p = getelementptr [8 x i32], ptr @table, i64 0, i64 %i
  %v = load i32, ptr %p
  store i32 %v, ptr @seen
  %r = urem i32 %v, 4
  ret i32 %r
}
"""


def test_global_data_maps() -> None:
    spec = program_spec_from_elf(compile_ir(GLOBALS_IR), "xdp", "xdp_globals",
                                 sc.BPF_PROG_TYPE_XDP, sc.BPF_XDP)
    maps = create_maps(spec)
    # LLVM names sections like ".rodata.cst32": key the maps by the section's prefix
    by_name = {"." + m.spec.name.split(".")[1]: m for m in maps}
    try:
        with Program.load(spec, maps) as p:
            got = [p.test_run(b"\0" * 64).retval for _ in range(4)]
        assert got == [101 % 4, 202 % 4, 303 % 4, 404 % 4]
        assert by_name[".bss"].lookup(k(0)) == struct.pack("<Q", 4)
        assert by_name[".data"].lookup(k(0)) == k(404)
        with pytest.raises(sc.BpfError):  # .rodata is frozen
            by_name[".rodata"].update(k(0), bytes(32))
    finally:
        for m in maps:
            m.close()


def test_verifier_log_of_a_good_program() -> None:
    with Map.create(VERDICTS) as m:
        log = verifier_log(xdp_spec(), [m], log_level=4)
    assert "processed" in log and "insns" in log
