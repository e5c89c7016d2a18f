"""Netlink attachments through pyroute2, for when bpf_links are missing or refused.

XDP via IFLA_XDP (replacing the program is one atomic netlink request) and tc
via a clsact qdisc with a direct-action cls_bpf filter (``replace-filter``
swaps the program atomically).  These stay attached without any fd or pin,
unlike bpf_links; pinning one pins its program so `find_netlink_attachment`
can locate the attachment again from another process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bpfilter.attach.link import AttachError, HasFd, Link
from bpfilter.loader import syscall as sc

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_MODE_FLAGS = {"drv": XDP_FLAGS_DRV_MODE, "skb": XDP_FLAGS_SKB_MODE}
TC_PARENTS = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
TC_PARENT_IDS = {0xFFFFFFF2: "ingress", 0xFFFFFFF3: "egress"}
TC_PRIO = 1
TC_HANDLE = 1
FILTER_NAME_PREFIX = "bpfilter-id"
T = TypeVar("T")


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def current_netns_fd() -> int:
    """An fd on the calling thread's network namespace (the caller closes it)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def in_netns(netns_fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a helper thread that entered ``netns_fd``.

    Why: an ifindex means something only in its namespace.  A netlink
    attachment remembers the namespace it was made in, so a later update or
    detach from another thread (e.g. the host's) can never hit a host device.
    """
    box: dict[str, object] = {}

    def runner() -> None:
        try:
            if _libc.setns(netns_fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@contextlib.contextmanager
def rtnl() -> Iterator[IPRoute]:
    """An rtnetlink socket in the calling thread's network namespace."""
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


class _NetnsBound:
    """Holds an fd on the namespace the attachment lives in; netlink calls run there."""

    _netns_fd: int = -1

    def _bind_netns(self) -> None:
        self._netns_fd = current_netns_fd()

    def _rtnl_call(self, fn: Callable[[IPRoute], T]) -> T:
        def run() -> T:
            with rtnl() as ipr:
                return fn(ipr)

        return in_netns(self._netns_fd, run)

    def close(self) -> None:
        if self._netns_fd >= 0:
            os.close(self._netns_fd)
            self._netns_fd = -1


def _prog_id(prog: HasFd) -> int:
    return sc.prog_info(prog.fd).id


class _RepinMixin:
    """Netlink attachments are known by their program's id and pin that program; after an
    update the pin must follow."""

    _pin_path: str | None = None
    _prog_id: int = 0

    @property
    def prog_id(self) -> int:
        return self._prog_id

    def pin(self, path: str | os.PathLike[str]) -> None:
        fd = sc.prog_get_fd_by_id(self._prog_id)
        try:
            sc.obj_pin(fd, path)
            self._pin_path = os.fspath(path)
        finally:
            os.close(fd)

    def _repin(self, prog: HasFd) -> None:
        if self._pin_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._pin_path)
            sc.obj_pin(prog.fd, self._pin_path)


class XdpNetlinkLink(_NetnsBound, _RepinMixin, Link):
    """An XDP program set on an interface with IFLA_XDP (driver or generic mode)."""

    kind = "xdp-netlink"

    def __init__(self, ifindex: int, mode: str, prog_id: int = 0) -> None:
        self.ifindex = ifindex
        self.mode = mode
        self._prog_id = prog_id
        self._bind_netns()

    @classmethod
    def attach(cls, prog: HasFd, ifindex: int, mode: str) -> XdpNetlinkLink:
        link = cls(ifindex, mode)
        try:
            link._set(prog.fd)
        except AttachError:
            link.close()
            raise
        link._prog_id = _prog_id(prog)
        return link

    def _set(self, fd: int) -> None:
        attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", XDP_MODE_FLAGS[self.mode])]
        try:
            self._rtnl_call(lambda ipr: ipr.link("set", index=self.ifindex,
                                                 xdp={"attrs": attrs}))
        except NetlinkError as exc:
            raise AttachError(f"netlink xdp ({self.mode}) on ifindex {self.ifindex}: "
                              f"{os.strerror(exc.code)}") from exc

    def update(self, prog: HasFd) -> None:
        self._set(prog.fd)  # one netlink request: the kernel swaps the pointer atomically
        self._prog_id = _prog_id(prog)
        self._repin(prog)

    def detach(self) -> None:
        self._set(-1)
        self._prog_id = 0

    def __repr__(self) -> str:
        return f"XdpNetlinkLink(ifindex={self.ifindex}, mode={self.mode}, prog={self._prog_id})"


class TcNetlinkLink(_NetnsBound, _RepinMixin, Link):
    """A direct-action cls_bpf filter on a clsact qdisc (ingress or egress)."""

    kind = "tc-netlink"

    def __init__(self, ifindex: int, direction: str, prog_id: int = 0) -> None:
        self.ifindex = ifindex
        self.direction = direction
        self._prog_id = prog_id
        self._bind_netns()

    @classmethod
    def attach(cls, prog: HasFd, ifindex: int, direction: str) -> TcNetlinkLink:
        link = cls(ifindex, direction)

        def add(ipr: IPRoute) -> None:
            with contextlib.suppress(NetlinkError):  # EEXIST: clsact already there
                ipr.tc("add", "clsact", ifindex)
            link._filter(ipr, "add-filter", prog)

        try:
            link._rtnl_call(add)
        except NetlinkError as exc:
            link.close()
            raise AttachError(f"tc {direction} filter on ifindex {ifindex}: "
                              f"{os.strerror(exc.code)}") from exc
        return link

    def _filter(self, ipr: IPRoute, command: str, prog: HasFd) -> None:
        prog_id = _prog_id(prog)
        ipr.tc(command, "bpf", self.ifindex, TC_HANDLE, fd=prog.fd,
               name=f"{FILTER_NAME_PREFIX}{prog_id}", parent=TC_PARENTS[self.direction],
               classid=1, direct_action=True, prio=TC_PRIO)
        self._prog_id = prog_id

    def update(self, prog: HasFd) -> None:
        self._rtnl_call(lambda ipr: self._filter(ipr, "replace-filter", prog))  # atomic swap
        self._repin(prog)

    def detach(self) -> None:
        self._rtnl_call(lambda ipr: ipr.tc("del-filter", "bpf", self.ifindex, TC_HANDLE,
                                           parent=TC_PARENTS[self.direction], prio=TC_PRIO))
        self._prog_id = 0

    def __repr__(self) -> str:
        return (f"TcNetlinkLink(ifindex={self.ifindex}, {self.direction}, "
                f"prog={self._prog_id})")


def find_netlink_attachment(prog_fd: int) -> Link:
    """Where (in this netns) is the program ``prog_fd`` attached through netlink?"""
    prog_id = sc.prog_info(prog_fd).id
    with rtnl() as ipr:
        links = ipr.get_links()
        for msg in links:
            xdp = msg.get_attr("IFLA_XDP")
            if xdp is None:
                continue
            for attr, mode in (("IFLA_XDP_DRV_PROG_ID", "drv"), ("IFLA_XDP_SKB_PROG_ID", "skb"),
                               ("IFLA_XDP_PROG_ID", None)):
                if xdp.get_attr(attr) == prog_id:
                    if mode is None:
                        mode = "skb" if xdp.get_attr("IFLA_XDP_ATTACHED") == 2 else "drv"
                    return XdpNetlinkLink(msg["index"], mode, prog_id)
        wanted = f"{FILTER_NAME_PREFIX}{prog_id}"
        for msg in links:
            for parent, direction in TC_PARENT_IDS.items():
                try:
                    filters = ipr.get_filters(index=msg["index"], parent=parent)
                except NetlinkError:
                    continue
                for flt in filters:
                    opts = flt.get_attr("TCA_OPTIONS")
                    if opts is not None and opts.get_attr("TCA_BPF_NAME") == wanted:
                        return TcNetlinkLink(msg["index"], direction, prog_id)
    raise AttachError(f"program id {prog_id} is pinned but attached nowhere in this netns")
