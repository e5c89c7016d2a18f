"""Netfilter bpf_links with an atomic program swap.

The kernel refuses BPF_LINK_UPDATE on netfilter links (EOPNOTSUPP, checked on
6.18).  Attaching the new program beside the old one and then detaching the
old is not atomic: in between a packet meets both.  So the link carries a
six-instruction *dispatcher* that tail-calls slot 0 of a one-entry
PROG_ARRAY; swapping rulesets is one map write, atomic for every packet.
An empty slot (or a failed tail call) falls through to NF_ACCEPT, i.e. the
packet continues to the rest of the hook (iptables), never silently lost.

Kernel rule to respect: a PROG_ARRAY is *emptied* when its last user
reference (fd or pin) goes away, even while a program still uses it.  So
`pin` pins the slot array too (``<path>_slot``); a pin of the link alone
would leave a link that accepts everything once the process exits.
"""

from __future__ import annotations

import os
import struct

from bpfilter.attach.link import AttachError, BpfLink, HasFd
from bpfilter.loader import syscall as sc

DISPATCHER_NAME = "bpfilter_nfdisp"
PROG_ARRAY_NAME = "bpfilter_nfslot"
BPF_FUNC_TAIL_CALL = 12
SLOT = struct.pack("<I", 0)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def dispatcher_insns(prog_array_fd: int) -> bytes:
    """r2 = &prog_array; r3 = 0; tail_call(ctx, r2, r3); return NF_ACCEPT."""
    return (_insn(0x18, dst=2, src=sc.BPF_PSEUDO_MAP_FD, imm=prog_array_fd) + _insn(0)
            + _insn(0xB7, dst=3, imm=0)
            + _insn(0x85, imm=BPF_FUNC_TAIL_CALL)
            + _insn(0xB7, dst=0, imm=sc.NF_ACCEPT)
            + _insn(0x95))


def slot_pin_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + "_slot"


class NetfilterLink(BpfLink):
    """A netfilter bpf_link whose program is the dispatcher; ``update`` writes its slot."""

    def __init__(self, fd: int, prog_array_fd: int) -> None:
        super().__init__(fd)
        self.prog_array_fd = prog_array_fd

    @classmethod
    def create(cls, prog: HasFd, family: int, hooknum: int, priority: int,
               flags: int = 0) -> NetfilterLink:
        array_fd = sc.map_create(sc.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1, name=PROG_ARRAY_NAME)
        disp_fd = -1
        try:
            sc.map_update_elem(array_fd, SLOT, struct.pack("<I", prog.fd))
            disp_fd = sc.prog_load(sc.BPF_PROG_TYPE_NETFILTER, dispatcher_insns(array_fd),
                                   name=DISPATCHER_NAME, expected_attach_type=sc.BPF_NETFILTER)
            fd = sc.link_create(disp_fd, sc.BPF_NETFILTER, nf_pf=family, nf_hooknum=hooknum,
                                nf_priority=priority, nf_flags=flags)
        except BaseException:
            os.close(array_fd)
            raise
        finally:
            if disp_fd >= 0:
                os.close(disp_fd)  # the link holds the dispatcher, the dispatcher the array
        return cls(fd, array_fd)

    @classmethod
    def from_link_fd(cls, fd: int) -> BpfLink:
        """Wrap a netfilter link fd; finds the dispatcher's slot array if it has one."""
        prog_fd = sc.prog_get_fd_by_id(sc.link_info(fd).prog_id)
        try:
            info = sc.prog_info(prog_fd)
        finally:
            os.close(prog_fd)
        if info.name == DISPATCHER_NAME and len(info.map_ids) == 1:
            return cls(fd, sc.map_get_fd_by_id(info.map_ids[0]))
        return BpfLink(fd)

    @property
    def prog_id(self) -> int:
        """The program in the slot (what decides packets), not the dispatcher."""
        value = sc.map_lookup_elem(self.prog_array_fd, SLOT, 4)
        return struct.unpack("<I", value)[0] if value else 0

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link at ``path`` and its slot array at ``<path>_slot`` (see module doc)."""
        sc.obj_pin(self.prog_array_fd, slot_pin_path(path))
        super().pin(path)

    def update(self, prog: HasFd) -> None:
        try:
            sc.map_update_elem(self.prog_array_fd, SLOT, struct.pack("<I", prog.fd))
        except sc.BpfError as exc:
            raise AttachError(f"swap netfilter program: {exc} (programs for this link must "
                              "be BPF_PROG_TYPE_NETFILTER with attach type BPF_NETFILTER)"
                              ) from exc

    def close(self) -> None:
        super().close()
        if self.prog_array_fd >= 0:
            os.close(self.prog_array_fd)
            self.prog_array_fd = -1
