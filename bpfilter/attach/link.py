"""One handle for every way a program can sit on a hook (libbpf's ``bpf_link`` idea).

Kinds:
- ``BpfLink``: a kernel bpf_link (XDP, TCX, netfilter) made with BPF_LINK_CREATE.
  It lives while an fd or a bpffs pin holds it; ``update`` is BPF_LINK_UPDATE,
  an atomic pointer swap, so no packet ever sees "no program".
- netlink attachments (`bpfilter.attach.netlink`): XDP set with IFLA_XDP and
  clsact + cls_bpf.  They stay attached without any fd; their ``pin`` pins the
  *program*, and `Link.from_pin` finds where that program is attached again.

All kinds share `Link`'s interface: ``update(prog)``, ``detach()``,
``pin(path)``, ``Link.from_pin(path)``, ``prog_id``, ``close()``.
Interface indexes and netfilter hooks are resolved in the calling thread's
network namespace (run inside ``ip netns exec`` or `netns.call_in_netns`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from bpfilter.loader import syscall as sc
from bpfilter.loader.fdobj import FdObject


class HasFd(Protocol):
    """Anything with a program fd: `bpfilter.loader.program.Program` or a test double."""

    fd: int


class AttachError(RuntimeError):
    """Attaching failed in every way tried; the message lists each attempt's error."""


def fd_kind(fd: int) -> str:
    """"link", "prog", "map" or "" — read from /proc/self/fdinfo (bpf fds say what they are)."""
    text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    for key, kind in (("link_type:", "link"), ("prog_type:", "prog"), ("map_type:", "map")):
        if key in text:
            return kind
    return ""


class Link(ABC):
    """A program attached to a hook; see the module docstring for the kinds."""

    kind: str = ""

    @abstractmethod
    def update(self, prog: HasFd) -> None:
        """Atomically replace the attached program with ``prog``."""

    @abstractmethod
    def detach(self) -> None:
        """Remove the program from the hook now (pins/fds may still exist)."""

    @abstractmethod
    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin in bpffs so the attachment can be found by a later process."""

    @property
    @abstractmethod
    def prog_id(self) -> int:
        """Id of the program currently attached (0 when detached)."""

    def close(self) -> None:
        """Drop this process's handle; a pinned or netlink attachment stays."""
        return None

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def from_pin(path: str | os.PathLike[str]) -> Link:
        """Reopen what `pin` left at ``path`` (a link, or a program attached via netlink)."""
        fd = sc.obj_get(path)
        kind = fd_kind(fd)
        if kind == "link":
            if sc.link_info(fd).type == sc.BPF_LINK_TYPE_NETFILTER:
                from bpfilter.attach.netfilter import NetfilterLink

                return NetfilterLink.from_link_fd(fd)
            return BpfLink(fd)
        if kind == "prog":
            from bpfilter.attach.netlink import find_netlink_attachment

            try:
                return find_netlink_attachment(fd)
            finally:
                os.close(fd)
        os.close(fd)
        raise AttachError(f"{path}: pinned object is a {kind or 'non-bpf'} object, not a link")


class BpfLink(FdObject, Link):
    """A kernel bpf_link (XDP, TCX or netfilter); owns one fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        info = sc.link_info(fd)
        self.kind = {sc.BPF_LINK_TYPE_XDP: "xdp", sc.BPF_LINK_TYPE_TCX: "tcx",
                     sc.BPF_LINK_TYPE_NETFILTER: "netfilter"}.get(info.type, f"link{info.type}")

    @property
    def info(self) -> sc.LinkInfo:
        return sc.link_info(self.fd)

    @property
    def prog_id(self) -> int:
        return self.info.prog_id

    def update(self, prog: HasFd) -> None:
        sc.link_update(self.fd, prog.fd)

    def detach(self) -> None:
        sc.link_detach(self.fd)

    def __repr__(self) -> str:
        return f"BpfLink({self.kind}, fd={self.fd})"
