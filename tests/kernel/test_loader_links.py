"""Pins in a private bpffs, and the link syscalls (create/info/update/detach) for XDP, TCX
and netfilter — each link test runs in a forked child inside a fresh network namespace
(unshare(CLONE_NEWNET)), which the kernel deletes with the child; the host's interfaces
and firewall are never touched.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import socket
import struct
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from bpfilter.loader import syscall as sc
from bpfilter.loader.bpffs import ensure_bpffs, is_bpffs, unmount_bpffs
from bpfilter.loader.elf import program_spec_from_elf
from bpfilter.loader.maps import Map, MapSpec
from bpfilter.loader.program import Program, ProgramSpec
from bpfilter.loader.toolchain import compile_ir
from tests.kernel_required import kernel  # noqa: F401  (fixture)

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("kernel")]

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def in_new_netns(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a forked child that first unshares its network namespace."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(r)
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            result: tuple[str, object] = ("ok", fn())
        except BaseException:  # noqa: B036  (report everything to the parent)
            result = ("err", traceback.format_exc())
        with os.fdopen(w, "wb") as f:
            pickle.dump(result, f)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    if status != "ok":
        pytest.fail(f"in netns child:\n{value}")
    return value  # type: ignore[return-value]


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "bpffs"
    assert ensure_bpffs(d) is True
    try:
        assert is_bpffs(d)
        assert ensure_bpffs(d) is False  # idempotent
        yield d
    finally:
        unmount_bpffs(d)
        assert not is_bpffs(d)


def const_prog(name: str, prog_type: int, attach: int, ret: int,
               counter: bool = False) -> ProgramSpec:
    """A program returning ``ret``; with ``counter`` it also increments map ``hits``[0]."""
    count = """
  %k = alloca i32
  store i32 0, ptr %k
  %v = call ptr inttoptr (i64 1 to ptr)(ptr @hits, ptr %k)
  %miss = icmp eq ptr %v, null
  br i1 %miss, label %out, label %inc
inc:
  %old = atomicrmw add ptr %v, i64 1 seq_cst
  br label %out
out:""" if counter else ""
    ir_text = f"""
{"@hits = external global i8" if counter else ""}
define i32 @{name}(ptr %ctx) nounwind section "prog" {{
entry:{count}
  ret i32 {ret}
}}
"""
    return program_spec_from_elf(compile_ir(ir_text), "prog", name, prog_type, attach,
                                 [HITS] if counter else [])


HITS = MapSpec("hits", sc.BPF_MAP_TYPE_ARRAY, 4, 8, 1)


# --- pins -------------------------------------------------------------------------------

def test_pin_and_get_map_and_program(bpffs: Path) -> None:
    with Map.create(HITS) as m, Program.load(const_prog("pinme", sc.BPF_PROG_TYPE_XDP,
                                                        sc.BPF_XDP, 2, True), [m]) as p:
        m.pin(bpffs / "hits")
        p.pin(bpffs / "prog")
        with Map.from_pin(bpffs / "hits") as m2, Program.from_pin(bpffs / "prog") as p2:
            assert m2.info.id == m.info.id
            assert m2.spec == HITS
            assert p2.info.id == p.info.id
            assert p2.name == "pinme"
            assert p2.info.map_ids == (m.info.id,)
            p2.test_run(b"\0" * 64, repeat=3)
            assert struct.unpack("<Q", m.lookup(b"\0" * 4))[0] == 3
    # pins keep objects alive after every fd is closed
    with Program.from_pin(bpffs / "prog") as p3:
        assert p3.test_run(b"\0" * 64).retval == sc.XDP_PASS
    with pytest.raises(sc.BpfError) as ei:
        sc.obj_get(bpffs / "missing")
    assert ei.value.errno == 2 and "open pinned" in str(ei.value)


# --- links (each in its own netns) ------------------------------------------------------

LO = 1  # loopback's ifindex in a fresh netns


def _xdp_link() -> dict[str, object]:
    a = Program.load(const_prog("xdp_a", sc.BPF_PROG_TYPE_XDP, sc.BPF_XDP, 2))
    b = Program.load(const_prog("xdp_b", sc.BPF_PROG_TYPE_XDP, sc.BPF_XDP, 2))
    link = sc.link_create(a.fd, sc.BPF_XDP, LO)
    info = sc.link_info(link)
    sc.link_update(link, b.fd, old_prog_fd=a.fd)
    after = sc.link_info(link).prog_id
    try:
        sc.link_update(link, a.fd, old_prog_fd=a.fd)  # a is no longer attached
        stale = 0
    except sc.BpfError as e:
        stale = e.errno or 0
    sc.link_detach(link)
    detached = sc.link_info(link)
    return {"info": info, "a": a.info.id, "b": b.info.id, "after": after, "stale": stale,
            "detached_ifindex": detached.ifindex}


def test_xdp_link_create_update_detach() -> None:
    r = in_new_netns(_xdp_link)
    info = r["info"]
    assert isinstance(info, sc.LinkInfo)
    assert info.type == sc.BPF_LINK_TYPE_XDP and info.ifindex == LO
    assert info.prog_id == r["a"]
    assert r["after"] == r["b"]
    assert r["stale"] == 1  # EPERM: BPF_F_REPLACE with a program that is not attached
    assert r["detached_ifindex"] == 0


def _tcx_links() -> list[sc.LinkInfo]:
    p = Program.load(const_prog("tcx_p", sc.BPF_PROG_TYPE_SCHED_CLS, sc.BPF_TCX_INGRESS, 0))
    ing = sc.link_create(p.fd, sc.BPF_TCX_INGRESS, LO)
    eg = sc.link_create(p.fd, sc.BPF_TCX_EGRESS, LO)
    # a second ingress program placed before the first one, by link fd (the same program
    # twice on one hook is EEXIST)
    q = Program.load(const_prog("tcx_q", sc.BPF_PROG_TYPE_SCHED_CLS, sc.BPF_TCX_INGRESS, 0))
    first = sc.link_create(q.fd, sc.BPF_TCX_INGRESS, LO, sc.BPF_F_BEFORE | sc.BPF_F_LINK,
                           relative_fd=ing)
    r = Program.load(const_prog("tcx_r", sc.BPF_PROG_TYPE_SCHED_CLS, sc.BPF_TCX_EGRESS, 2))
    sc.link_update(eg, r.fd, old_prog_fd=p.fd)  # atomic swap under the egress link
    infos = [sc.link_info(x) for x in (ing, eg, first)]
    infos.append(sc.LinkInfo(type=0, id=0, prog_id=r.info.id))
    for x in (ing, eg, first):
        os.close(x)
    return infos


def test_tcx_links() -> None:
    ing, eg, first, swapped = in_new_netns(_tcx_links)
    assert eg.prog_id == swapped.prog_id
    assert (ing.type, ing.ifindex, ing.attach_type) == (sc.BPF_LINK_TYPE_TCX, LO,
                                                       sc.BPF_TCX_INGRESS)
    assert eg.attach_type == sc.BPF_TCX_EGRESS
    assert first.attach_type == sc.BPF_TCX_INGRESS and first.id not in (ing.id, eg.id)


PROGS = MapSpec("progs", sc.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1)


def nf_dispatcher() -> ProgramSpec:
    """nf program that tail-calls progs[0] (NF_ACCEPT when the slot is empty)."""
    ir_text = """
@progs = external global i8
define i32 @nf_dispatch(ptr %ctx) nounwind section "nf" {
  %r = call i64 inttoptr (i64 12 to ptr)(ptr %ctx, ptr @progs, i32 0)
  ret i32 1
}
"""
    return program_spec_from_elf(compile_ir(ir_text), "nf", "nf_dispatch",
                                 sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER, [PROGS])


def _nf_link_counts_and_drops() -> dict[str, object]:
    os.system("ip link set lo up")  # noqa: S605  (inside the child's own netns)
    hits, progs = Map.create(HITS), Map.create(PROGS)
    acc = Program.load(const_prog("nf_acc", sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER,
                                  sc.NF_ACCEPT, True), [hits])
    drop = Program.load(const_prog("nf_drop", sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER,
                                   sc.NF_DROP))
    disp = Program.load(nf_dispatcher(), [progs])
    link = sc.link_create(acc.fd, sc.BPF_NETFILTER, nf_pf=sc.NFPROTO_IPV4,
                          nf_hooknum=sc.NF_INET_LOCAL_IN, nf_priority=-100)
    info = sc.link_info(link)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.sendto(b"one", rx.getsockname())
    got = rx.recv(16)  # accepted: arrives (blocking read, no timing)
    counted = struct.unpack("<Q", hits.lookup(b"\0" * 4) or b"")[0]
    try:
        sc.link_update(link, drop.fd, old_prog_fd=acc.fd)
        update_errno = 0
    except sc.BpfError as e:
        update_errno = e.errno or 0
    sc.link_detach(link)
    # swapping verdict programs under an nf link: a tail-call dispatcher + prog array
    link = sc.link_create(disp.fd, sc.BPF_NETFILTER, nf_pf=sc.NFPROTO_IPV4,
                          nf_hooknum=sc.NF_INET_LOCAL_IN, nf_priority=-100)
    progs.update(b"\0" * 4, struct.pack("<I", drop.fd))
    tx.sendto(b"two", rx.getsockname())  # dropped at LOCAL_IN
    progs.update(b"\0" * 4, struct.pack("<I", acc.fd))
    tx.sendto(b"three", rx.getsockname())
    after = rx.recv(16)  # "two" never queued, so the next datagram is "three"
    counted2 = struct.unpack("<Q", hits.lookup(b"\0" * 4) or b"")[0]
    return {"info": info, "got": got, "counted": counted, "after": after,
            "update_errno": update_errno, "counted2": counted2}


def test_netfilter_link_filters_local_in() -> None:
    r = in_new_netns(_nf_link_counts_and_drops)
    info = r["info"]
    assert isinstance(info, sc.LinkInfo)
    assert info.type == sc.BPF_LINK_TYPE_NETFILTER
    assert (info.pf, info.hooknum, info.priority) == (sc.NFPROTO_IPV4, sc.NF_INET_LOCAL_IN,
                                                     -100)
    assert r["got"] == b"one"
    assert r["counted"] == 1
    # kernel 6.18: netfilter links cannot swap programs (EOPNOTSUPP)...
    assert r["update_errno"] == 95
    # ...but a tail-call dispatcher can: "two" was dropped, "three" accepted and counted
    assert r["after"] == b"three"
    assert r["counted2"] == 2


def _pinned_link(pin_dir: str) -> int:
    p = Program.load(const_prog("nf_pin", sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER, 1))
    link = sc.link_create(p.fd, sc.BPF_NETFILTER, nf_pf=sc.NFPROTO_IPV4,
                          nf_hooknum=sc.NF_INET_LOCAL_OUT, nf_priority=10)
    sc.obj_pin(link, os.path.join(pin_dir, "link"))
    again = sc.obj_get(os.path.join(pin_dir, "link"))
    same = sc.link_info(again).id == sc.link_info(link).id
    sc.link_detach(again)
    return int(same)


def test_link_pin(bpffs: Path) -> None:
    assert in_new_netns(lambda: _pinned_link(str(bpffs))) == 1
    assert (bpffs / "link").exists()  # the pin outlives the process (and its netns)
