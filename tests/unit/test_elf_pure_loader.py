"""Kernel-free parts of the loader: error formatting, specs, IR conventions."""

from __future__ import annotations

import ctypes
import errno
import pickle

import pytest

from bpfilter.loader import syscall as sc
from bpfilter.loader.maps import MapSpec
from bpfilter.loader.program import ProgramSpec, nf_test_ctx
from bpfilter.loader.toolchain import assembly, compile_ir


def test_bpf_error_text_names_action_errno_and_log_tail() -> None:
    log = "\n".join(f"line {i}" for i in range(50)) + "\n"
    e = sc.BpfError("load program filter_input", errno.EACCES, log)
    text = str(e)
    head, *tail = text.splitlines()
    assert head == "load program filter_input: Permission denied (EACCES)"
    assert tail == [f"line {i}" for i in range(30, 50)]
    assert isinstance(e, OSError) and e.errno == errno.EACCES
    again = pickle.loads(pickle.dumps(e))
    assert (again.what, again.errno, again.log) == (e.what, e.errno, e.log)
    assert str(sc.BpfError("pin /x", errno.ENOENT)) == "pin /x: No such file or directory (ENOENT)"


def test_attr_layouts_match_uapi_offsets() -> None:
    # offsets from include/uapi/linux/bpf.h (union bpf_attr, kernel 6.18)
    assert sc.ProgLoadAttr.fd_array.offset == 120
    assert sc.ProgLoadAttr.log_true_size.offset == 140
    assert sc.MapCreateAttr.map_extra.offset == 64
    assert ctypes.sizeof(sc.TestRunAttr) == 80
    assert ctypes.sizeof(sc.LinkCreateAttr) == 32
    assert sc.BpfProgInfo.map_ids.offset == 56 and sc.BpfProgInfo.name.offset == 64
    assert sc.BpfMapInfo.map_extra.offset == 80


def test_specs() -> None:
    lpm = MapSpec("lpm", sc.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16)
    assert lpm.flags & sc.BPF_F_NO_PREALLOC  # the kernel insists
    assert MapSpec("c", sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 1).percpu
    with pytest.raises(ValueError, match="multiple of 8"):
        ProgramSpec("p", sc.BPF_PROG_TYPE_XDP, b"\0" * 12)
    assert ProgramSpec("p", sc.BPF_PROG_TYPE_XDP, b"\0" * 16).insn_count == 2


def test_nf_test_ctx_layout() -> None:
    ctx = nf_test_ctx(sc.NF_INET_FORWARD, sc.NFPROTO_IPV6)
    assert len(ctx) == 48 and ctx[:2] == bytes([2, 10]) and not any(ctx[2:])


def test_i64_loads_are_not_split() -> None:
    # without the data layout at parse time LLVM would assume 4-byte i64 alignment and
    # split this into two 32-bit loads, which the verifier refuses on kernel pointers
    text = """
    define i64 @f(ptr %p) nounwind {
      %q = getelementptr i8, ptr %p, i64 192
      %v = load i64, ptr %q
      ret i64 %v
    }"""
    asm = assembly(text)
    assert "r0 = *(u64 *)(r1 + 192)" in asm
    assert "u32" not in asm


def test_helper_call_convention() -> None:
    text = """
    @m = external global i8
    define i32 @f(ptr %ctx) nounwind section "xdp" {
      %k = alloca i32
      store i32 0, ptr %k
      %v = call ptr inttoptr (i64 1 to ptr)(ptr @m, ptr %k)
      %z = icmp eq ptr %v, null
      %r = select i1 %z, i32 2, i32 1
      ret i32 %r
    }"""
    asm = assembly(text)
    assert "call 1" in asm and "r1 = m ll" in asm
    assert compile_ir(text)[:4] == b"\x7fELF"
