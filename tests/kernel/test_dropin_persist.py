"""Persistence: --iface patterns reach interfaces that appear later, stale state is not trusted.

- `bpfilter-restore --hook xdp --iface 'vx+'` records the pattern; an interface
  `vx0` created afterwards gets the XDP program from `bpfilter attach-new` (the
  command a udev rule or network hook runs), and its name joins the programs'
  interface-name map so `-i vx+` rules match there too. A device deleted and
  re-created under the same name is attached again.
- A state left by a dead namespace whose inode was reused (other netns cookie,
  pins gone) is discarded: a new restore works and does not merge with it.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from bpfilter.verify.netns import ip
from tests.conftest import require_netns
from tests.kernel.dropin_lab import BIN, bpfilter_env, run_in
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i vx+ -p udp -m udp --dport 7002 -j DROP
-A INPUT -p udp -m udp --dport 7001 -j DROP
COMMIT
"""


class Pair:
    """Namespace `a` sends UDP to namespace `b` (where bpfilter runs) over vxN."""

    def __init__(self, topo, run_dir: Path) -> None:
        self.topo = topo
        self.a, self.b = topo.netns("a"), topo.netns("b")
        self.env = bpfilter_env(run_dir)
        self.n = 0

    def link(self, n: int) -> None:
        self.topo.veth("a", f"va{n}", "b", f"vx{n}")
        self.topo.addr("a", f"va{n}", f"192.168.{70 + n}.1/24")
        self.topo.addr("b", f"vx{n}", f"192.168.{70 + n}.2/24")

    def unlink(self, n: int) -> None:
        ip("link", "del", f"vx{n}", netns=self.b)

    def bpf(self, *argv: str, stdin: str = ""):
        return run_in(self.b, [str(BIN / argv[0]), *argv[1:]], stdin, self.env)

    def delivered(self, n: int, port: int) -> bool:
        """One datagram a → b on vxN: does a socket in b receive it?"""
        self.n += 1
        payload = f"probe-{self.n}".encode()
        rx = self.topo.call("b", _bound, f"192.168.{70 + n}.2", port)
        try:
            self.topo.call("a", _send, f"192.168.{70 + n}.2", port, payload)
            return self.topo.call("b", _received, rx, payload)
        finally:
            rx.close()


def _bound(addr: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(1.0)
    return s


def _send(addr: str, port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):  # the first one may wait for ARP
            s.sendto(payload, (addr, port))


def _received(s: socket.socket, payload: bytes) -> bool:
    try:
        while True:
            if s.recv(2048) == payload:
                return True
    except TimeoutError:
        return False


@pytest.fixture
def pair(topology, tmp_path: Path):
    require_netns()
    ok, why = bpf_available()
    require_kernel(ok, why)
    p = Pair(topology("persist"), tmp_path)
    try:
        yield p
    finally:
        p.bpf("bpfilter", "flush")
        subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], capture_output=True)


def _xdp_on(p: Pair, dev: str) -> bool:
    return "xdp" in ip("-d", "link", "show", "dev", dev, netns=p.b)


def test_iface_pattern_reaches_interfaces_created_later(pair: Pair) -> None:
    p = pair
    r = p.bpf("bpfilter-restore", "--hook", "xdp", "--iface", "vx+", stdin=RULES)
    assert r.rc == 0, r.stderr
    assert "interfaces: vx+" in p.bpf("bpfilter", "status").stdout
    p.link(0)
    status = p.bpf("bpfilter", "status").stdout
    assert "vx0: matches but has no filter yet" in status, status
    r = p.bpf("bpfilter", "attach-new")
    assert r.rc == 0, r.stderr
    assert "on vx0" in r.stdout
    assert _xdp_on(p, "vx0")
    assert p.bpf("bpfilter", "attach-new").stdout == ""  # nothing new: nothing done
    status = p.bpf("bpfilter", "status").stdout
    assert "xdp ingress on vx0 (INPUT, FORWARD) attached" in status, status
    assert "no filter yet" not in status
    assert p.delivered(0, 7000)
    assert not p.delivered(0, 7001)
    assert not p.delivered(0, 7002)  # -i vx+ matched: vx0's name is in the program's map
    saved = p.bpf("bpfilter-save", "-c").stdout
    assert not [x for x in saved.splitlines() if "--dport 700" in x and x.startswith("[0:")]
    # The device goes away and comes back under the same name: attached again.
    p.unlink(0)
    p.link(0)
    assert "vx0: matches but has no filter yet" in p.bpf("bpfilter", "status").stdout
    assert "on vx0" in p.bpf("bpfilter", "attach-new").stdout
    assert _xdp_on(p, "vx0")
    assert not p.delivered(0, 7001) and p.delivered(0, 7000)


def test_restore_with_pattern_attaches_every_current_match(pair: Pair) -> None:
    p = pair
    p.link(0)
    p.link(1)
    r = p.bpf("bpfilter-restore", "--hook", "xdp", "--iface", "vx+", stdin=RULES)
    assert r.rc == 0, r.stderr
    assert _xdp_on(p, "vx0") and _xdp_on(p, "vx1")
    assert not p.delivered(1, 7002) and p.delivered(1, 7000)
    r = p.bpf("bpfilter-restore", "--hook", "xdp", "--iface", "nosuch0", stdin=RULES)
    assert r.rc == 1 and "no such interface: nosuch0" in r.stderr
    assert _xdp_on(p, "vx0") and not p.delivered(0, 7001)  # the failed restore changed nothing


def test_stale_state_of_a_dead_namespace_is_not_trusted(pair: Pair, tmp_path: Path) -> None:
    """Same inode, other namespace: its state must neither block nor merge into a restore."""
    p = pair
    p.link(0)
    assert p.bpf("bpfilter-restore", stdin=RULES).rc == 0
    state_file = next((tmp_path / "state").rglob("ipv4.json"))
    state = json.loads(state_file.read_text())
    # What a namespace that died without `bpfilter flush` leaves behind when a new
    # namespace gets its inode: another cookie, pins that no longer exist.
    p.bpf("bpfilter", "flush")
    state["netns_cookie"] = state["netns_cookie"] + 1_000_000
    state_file.write_text(json.dumps(state))
    r = p.bpf("bpfilter-restore", "--noflush", stdin="*filter\n-A INPUT -p udp -m udp "
              "--dport 7005 -j DROP\nCOMMIT\n")
    assert r.rc == 0, r.stderr
    saved = p.bpf("bpfilter-save").stdout
    assert "--dport 7005" in saved and "--dport 7001" not in saved  # nothing merged
    assert "generation 1" in p.bpf("bpfilter", "status").stdout
    assert not p.delivered(0, 7005) and p.delivered(0, 7001)


def test_pins_vanished_restore_attaches_anew(pair: Pair, tmp_path: Path) -> None:
    """The bpffs went away (unmounted): the state's pins are gone, the next restore works."""
    p = pair
    p.link(0)
    assert p.bpf("bpfilter-restore", stdin=RULES).rc == 0
    assert not p.delivered(0, 7001)
    # The record stays, the pins go (and with them the links they held).
    subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], check=True)
    status = p.bpf("bpfilter", "status").stdout
    assert "MISSING" in status
    r = p.bpf("bpfilter-restore", stdin=RULES.replace("7001", "7003"))
    assert r.rc == 0, r.stderr
    assert "MISSING" not in p.bpf("bpfilter", "status").stdout
    assert not p.delivered(0, 7003)
    assert p.delivered(0, 7001)  # the old links went with their pins: nothing left over


def test_netfilter_persistent_plugin_end_to_end(pair: Pair, tmp_path: Path) -> None:
    """The plugin as netfilter-persistent runs it, with the real bpfilter, in a namespace."""
    from bpfilter.cli import DATA_DIR

    p = pair
    p.link(0)
    rules = tmp_path / "etc-iptables"
    rules.mkdir()
    (rules / "rules.v4").write_text(RULES)
    env = {**p.env, "BPFILTER_RULES_DIR": str(rules), "PATH": f"{BIN}:/usr/sbin:/usr/bin"}
    plugin = str(DATA_DIR / "netfilter-persistent" / "15-bpfilter")
    r = run_in(p.b, [plugin, "start"], env=env)
    assert r.rc == 0, r.stderr
    assert not p.delivered(0, 7001) and p.delivered(0, 7000)
    r = run_in(p.b, [plugin, "save"], env=env)
    assert r.rc == 0, r.stderr
    assert (rules / "rules.v4").read_text() == p.bpf("bpfilter-save").stdout
    assert not (rules / "rules.v6").exists()  # nothing loaded for IPv6: no empty file
    r = run_in(p.b, [plugin, "flush"], env=env)
    assert r.rc == 0, r.stderr
    assert p.delivered(0, 7001)
    assert p.bpf("bpfilter", "status").stdout.strip() == "nothing loaded"
