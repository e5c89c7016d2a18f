"""Attach for real: a drop program must stop traffic, an atomic swap must restore it.

Each kind of attachment (XDP link / netlink in driver and generic mode, TCX
link, clsact+cls_bpf, netfilter link) is tried on the router lab's veths:
tagged packets are sent and we look at which arrive, so the test judges by
what the kernel actually did, not by return codes.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable

import pytest

from bpfilter.attach import AttachError, Link, attach_netfilter, attach_tc, attach_xdp
from bpfilter.loader import syscall as sc
from bpfilter.loader.program import Program, ProgramSpec
from bpfilter.verify.packets import IPPROTO_UDP, PacketSpec, build_frames
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def insns_return(value: int) -> bytes:
    """``r0 = value; exit`` — the smallest program there is."""
    mov_r0 = struct.pack("<BBhi", 0xB7, 0x00, 0, value)  # BPF_ALU64 | BPF_MOV | BPF_K
    exit_ = struct.pack("<BBhi", 0x95, 0x00, 0, 0)
    return mov_r0 + exit_


KINDS = {
    # kind: (prog_type, expected_attach_type, drop value, pass value)
    "xdp": (sc.BPF_PROG_TYPE_XDP, 0, sc.XDP_DROP, sc.XDP_PASS),
    "tc": (sc.BPF_PROG_TYPE_SCHED_CLS, 0, sc.TC_ACT_SHOT, sc.TC_ACT_OK),
    "nf": (sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER, sc.NF_DROP, sc.NF_ACCEPT),
}


def load(kind: str, verdict: str) -> Program:
    prog_type, eat, drop, accept = KINDS[kind]
    value = drop if verdict == "drop" else accept
    spec = ProgramSpec(f"t_{kind}_{verdict}", prog_type, insns_return(value),
                       expected_attach_type=eat)
    return Program.load(spec)


@pytest.fixture
def lab(router_lab):
    ok, why = bpf_available()
    require_kernel(ok, why)
    return router_lab


class Probe:
    """Sends fresh tagged UDP packets through the lab and says which arrived."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self.next_tag = 1

    def arrived(self, dst: str, count: int = 8) -> int:
        where = "input" if dst.startswith("10.") else "forward"
        specs = []
        for _ in range(count):
            specs.append(PacketSpec("172.16.9.1", dst, IPPROTO_UDP, dport=7000)
                         .with_tags(self.next_tag))
            self.next_tag += 1
        frames = [f for s in specs for f in build_frames(s, self.lab.src_mac, self.lab.dut_mac)]
        cap = self.lab.send(frames, protocols=(IPPROTO_UDP,))
        return len(cap.tags[where] & {s.tags[0] for s in specs})


def check_drop_swap_detach(lab, kind: str, attach: Callable[[Program], Link],
                           dst: str = "10.0.0.1") -> Link:
    """drop → nothing arrives; update(pass) → all; update(drop) → none; detach → all."""
    probe = Probe(lab)
    assert probe.arrived(dst) == 8, "lab broken before attaching anything"
    drop, accept = load(kind, "drop"), load(kind, "pass")
    link = lab.topo.call("dut", attach, drop)
    try:
        assert link.prog_id == drop.info.id
        assert probe.arrived(dst) == 0
        link.update(accept)
        assert link.prog_id == accept.info.id
        assert probe.arrived(dst) == 8
        link.update(drop)
        assert probe.arrived(dst) == 0
        link.detach()
        assert probe.arrived(dst) == 8
    finally:
        link.close()
    return link


@pytest.mark.parametrize("method", ["link", "netlink", "auto"])
@pytest.mark.parametrize("mode", ["drv", "skb", "auto"])
def test_xdp(lab, mode: str, method: str) -> None:
    ifindex = lab.topo.ifindex("dut", "in0")
    link = check_drop_swap_detach(
        lab, "xdp", lambda p: attach_xdp(p, ifindex, mode, method=method))
    assert link.kind == ("xdp-netlink" if method == "netlink" else "xdp")


@pytest.mark.parametrize("method", ["link", "netlink"])
def test_tc_ingress(lab, method: str) -> None:
    ifindex = lab.topo.ifindex("dut", "in0")
    link = check_drop_swap_detach(lab, "tc", lambda p: attach_tc(p, ifindex, method=method))
    assert link.kind == ("tcx" if method == "link" else "tc-netlink")


@pytest.mark.parametrize("method", ["link", "netlink"])
def test_tc_egress_stops_forwarded_traffic(lab, method: str) -> None:
    ifindex = lab.topo.ifindex("dut", "out0")  # 20.0.0.0/8 leaves through out0
    check_drop_swap_detach(lab, "tc", lambda p: attach_tc(p, ifindex, "egress", method=method),
                           dst="20.0.0.1")


@pytest.mark.parametrize(("hook", "dst"), [("INPUT", "10.0.0.1"), ("FORWARD", "20.0.0.1"),
                                           ("PREROUTING", "10.0.0.1")])
def test_netfilter(lab, hook: str, dst: str) -> None:
    link = check_drop_swap_detach(lab, "nf", lambda p: attach_netfilter(p, 2, hook, -100),
                                  dst=dst)
    assert link.kind == "netfilter"


def test_netfilter_link_reports_its_hook(lab) -> None:
    prog = load("nf", "pass")
    link = lab.topo.call("dut", attach_netfilter, prog, 2, "FORWARD", -7)
    try:
        info = link.info
        assert (info.pf, info.hooknum, info.priority) == (2, sc.NF_INET_FORWARD, -7)
    finally:
        link.close()


def test_bpf_link_dies_with_its_last_fd(lab) -> None:
    """An unpinned bpf_link must not outlive the process that made it."""
    probe = Probe(lab)
    ifindex = lab.topo.ifindex("dut", "in0")
    link = lab.topo.call("dut", attach_xdp, load("xdp", "drop"), ifindex, "drv", method="link")
    assert probe.arrived("10.0.0.1") == 0
    link.close()
    assert probe.arrived("10.0.0.1") == 8


def test_bad_arguments_are_refused(lab) -> None:
    prog = load("xdp", "pass")
    with pytest.raises(ValueError):
        attach_xdp(prog, 1, "offload")
    with pytest.raises(ValueError):
        attach_netfilter(load("nf", "pass"), 2, "NOWHERE", 0)
    with pytest.raises(AttachError):  # an XDP program is not a netfilter program
        lab.topo.call("dut", attach_netfilter, prog, 2, "INPUT", 0)


FIND_AND_DETACH = """
import sys
from bpfilter.attach import Link
link = Link.from_pin(sys.argv[1])
print(link.kind, link.prog_id)
link.detach()
"""


@pytest.mark.parametrize(("kind", "method"), [("xdp", "link"), ("xdp", "netlink"),
                                               ("tc", "link"), ("tc", "netlink"),
                                               ("nf", "link")])
def test_pin_survives_and_is_found_from_another_process(lab, bpffs_dir, kind: str,
                                                         method: str) -> None:
    probe = Probe(lab)
    ifindex = lab.topo.ifindex("dut", "in0")
    prog = load(kind, "drop")
    attach = {
        "xdp": lambda: attach_xdp(prog, ifindex, "drv", method=method),
        "tc": lambda: attach_tc(prog, ifindex, method=method),
        "nf": lambda: attach_netfilter(prog, 2, "INPUT", -100),
    }[kind]
    link = lab.topo.call("dut", attach)
    pin = bpffs_dir / f"{kind}_{method}"
    link.pin(pin)
    expected_id = link.prog_id
    link.close()
    prog.close()  # only the pin (or the netlink attachment) holds it now
    assert probe.arrived("10.0.0.1") == 0

    proc = lab.topo.exec("dut", [sys.executable, "-c", FIND_AND_DETACH, str(pin)],
                         env={"PYTHONPATH": REPO}, check=False)
    assert proc.returncode == 0, proc.stderr
    found_kind, found_id = proc.stdout.split()
    assert int(found_id) == expected_id
    assert found_kind == {"link": {"xdp": "xdp", "tc": "tcx", "nf": "netfilter"}[kind],
                          "netlink": f"{kind}-netlink"}[method]
    assert probe.arrived("10.0.0.1") == 8


def test_from_pin_rejects_a_map(lab, bpffs_dir) -> None:
    fd = sc.map_create(sc.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="notalink")
    try:
        sc.obj_pin(fd, bpffs_dir / "m")
    finally:
        os.close(fd)
    with pytest.raises(AttachError, match="map"):
        Link.from_pin(bpffs_dir / "m")


def test_pinned_path_is_visible_to_ip_netns_exec(lab, bpffs_dir) -> None:
    """The premise of per-netns state: a host-mounted bpffs is seen under ip netns exec."""
    (bpffs_dir / "d").mkdir()
    proc = subprocess.run(["ip", "netns", "exec", lab.dut, "ls", str(bpffs_dir)],
                          capture_output=True, text=True, check=True)
    assert "d" in proc.stdout.split()
