"""attach_xdp / attach_tc / attach_netfilter: pick the best way, fall back, return a Link.

Preference: a kernel bpf_link first (atomic update, pinnable, detaches when its
last holder goes — nothing lingers after a crash), then pyroute2 netlink
(XDP via IFLA_XDP; tc via clsact + cls_bpf).  ``method`` forces one of them
("link" or "netlink"), mainly so tests can exercise both.  Everything happens
in the calling thread's network namespace.
"""

from __future__ import annotations

from bpfilter.attach.link import AttachError, BpfLink, HasFd, Link
from bpfilter.attach.netfilter import NetfilterLink
from bpfilter.attach.netlink import XDP_MODE_FLAGS, TcNetlinkLink, XdpNetlinkLink
from bpfilter.loader import syscall as sc

NF_HOOKS = {
    "PREROUTING": sc.NF_INET_PRE_ROUTING,
    "INPUT": sc.NF_INET_LOCAL_IN,
    "FORWARD": sc.NF_INET_FORWARD,
    "OUTPUT": sc.NF_INET_LOCAL_OUT,
    "POSTROUTING": sc.NF_INET_POST_ROUTING,
}
TCX_ATTACH = {"ingress": sc.BPF_TCX_INGRESS, "egress": sc.BPF_TCX_EGRESS}
METHODS = ("auto", "link", "netlink")


def _check(value: str, allowed: tuple[str, ...] | dict, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def attach_xdp(prog: HasFd, ifindex: int, mode: str = "auto", *, method: str = "auto") -> Link:
    """Attach an XDP program; mode "auto" tries driver (native) mode, then generic (skb)."""
    _check(mode, ("auto", "drv", "skb"), "XDP mode")
    _check(method, METHODS, "method")
    modes = ("drv", "skb") if mode == "auto" else (mode,)
    errors: list[str] = []
    if method in ("auto", "link"):
        for m in modes:
            try:
                return BpfLink(sc.link_create(prog.fd, sc.BPF_XDP, ifindex, XDP_MODE_FLAGS[m]))
            except sc.BpfError as exc:
                errors.append(f"bpf_link {m}: {exc}")
    if method in ("auto", "netlink"):
        for m in modes:
            try:
                return XdpNetlinkLink.attach(prog, ifindex, m)
            except AttachError as exc:
                errors.append(str(exc))
    raise AttachError(f"attach XDP to ifindex {ifindex} failed: " + "; ".join(errors))


def attach_tc(prog: HasFd, ifindex: int, direction: str = "ingress", *,
              method: str = "auto") -> Link:
    """Attach a SCHED_CLS program: TCX link first, else clsact + direct-action cls_bpf."""
    _check(direction, TCX_ATTACH, "tc direction")
    _check(method, METHODS, "method")
    errors: list[str] = []
    if method in ("auto", "link"):
        try:
            return BpfLink(sc.link_create(prog.fd, TCX_ATTACH[direction], ifindex))
        except sc.BpfError as exc:
            errors.append(f"tcx link: {exc}")
    if method in ("auto", "netlink"):
        try:
            return TcNetlinkLink.attach(prog, ifindex, direction)
        except AttachError as exc:
            errors.append(str(exc))
    raise AttachError(f"attach tc {direction} to ifindex {ifindex} failed: " + "; ".join(errors))


def attach_netfilter(prog: HasFd, family: int, hook: str, priority: int, *,
                     defrag: bool = False) -> Link:
    """Attach a BPF_PROG_TYPE_NETFILTER program at ``hook`` with ``priority``.

    The link holds a dispatcher so that ``update`` is atomic (see attach.netfilter).

    ``family`` is the NFPROTO number (`bpfilter.ir.Family` values match).  The
    iptables filter table sits at priority 0; lower numbers run earlier.
    ``defrag`` asks the kernel to reassemble first (BPF_F_NETFILTER_IP_DEFRAG).
    """
    _check(hook, NF_HOOKS, "netfilter hook")
    flags = sc.BPF_F_NETFILTER_IP_DEFRAG if defrag else 0
    try:
        return NetfilterLink.create(prog, int(family), NF_HOOKS[hook], priority, flags)
    except sc.BpfError as exc:
        raise AttachError(f"attach netfilter {hook} prio {priority}: {exc}") from exc
