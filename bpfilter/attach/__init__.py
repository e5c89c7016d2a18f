"""Attach programs to hooks and get back one `Link` handle (update / detach / pin)."""

from bpfilter.attach.api import NF_HOOKS, attach_netfilter, attach_tc, attach_xdp
from bpfilter.attach.link import AttachError, BpfLink, Link
from bpfilter.attach.netlink import TcNetlinkLink, XdpNetlinkLink

__all__ = ["NF_HOOKS", "AttachError", "BpfLink", "Link", "TcNetlinkLink", "XdpNetlinkLink",
           "attach_netfilter", "attach_tc", "attach_xdp"]
