"""Stateful differential lab: real connections through a router running the ruleset.

Topology (one per twin): cli (10.1.0.2) — dut (10.1.0.1 | 10.2.0.1) — srv (10.2.0.2).
The ruleset is loaded into dut: flows cli→srv cross its FORWARD chain, flows cli→dut
meet INPUT / OUTPUT. Echo servers run in dut and srv (TCP 22, 80, 443, 8080; UDP 53,
123); other ports are closed, so the kernels answer with RST / ICMP port unreachable
(RELATED traffic through OUTPUT / FORWARD).

A flow is run by a client process in cli and reduced to an outcome string that does
not depend on random ports or sequence numbers ("ok:12", "refused", "timeout",
"reply", "rst", ...). The same seeded flow list runs against the reference (iptables-
legacy in one twin) and the candidate (bpfilter in the other); outcomes are compared
one by one. Waiting for an answer that never comes uses short socket timeouts: they
decide nothing but "no answer", which a filtered packet gives on both twins alike.
"""

from __future__ import annotations

import json
import random
import subprocess
from dataclasses import dataclass
from types import SimpleNamespace

from bpfilter.verify.netns import Topology

CLI, DUT_CLI, DUT_SRV, SRV = "10.1.0.2", "10.1.0.1", "10.2.0.1", "10.2.0.2"
TCP_OPEN = (22, 80, 443, 8080)
UDP_OPEN = (53, 123)
TCP_CLOSED = (25, 8443)
UDP_CLOSED = (5353, 161)

SERVER = r"""
import socket, select, sys
TCP, UDP = (22, 80, 443, 8080), (53, 123)
socks = []
for p in TCP:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(64); socks.append(("tcp", s))
for p in UDP:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", p))
    socks.append(("udp", s))
conns = {}
print("ready", flush=True)
while True:
    fds = [s for _, s in socks] + list(conns)
    r, _, _ = select.select(fds, [], [])
    for s in r:
        kind = dict((id(x), k) for k, x in socks).get(id(s))
        if kind == "tcp":
            c, _ = s.accept(); conns[c] = 1
        elif kind == "udp":
            data, addr = s.recvfrom(2048); s.sendto(data, addr)
        else:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                try:
                    s.sendall(data)
                except OSError:
                    pass
            else:
                conns.pop(s, None); s.close()
"""

CLIENT = r"""
import json, socket, struct, sys, time, os
WAIT = 0.4
flows = json.loads(sys.stdin.read())
out = []

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def tcp_seg(src, dst, sport, dport, flags, seq, ack):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    c = csum(ph + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]

def tcp_flow(dst, port, n, close):
    s = socket.socket(); s.settimeout(WAIT)
    try:
        s.connect((dst, port))
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return "err:%d" % e.errno
    got = b""
    try:
        s.sendall(b"x" * n)
        while len(got) < n:
            d = s.recv(4096)
            if not d: break
            got += d
    except (socket.timeout, TimeoutError):
        pass
    except OSError as e:
        return "ok:%d:err%d" % (len(got), e.errno)
    if close == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return "ok:%d" % len(got)

def udp_flow(dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(WAIT)
    s.connect((dst, port))
    try:
        s.send(b"ping")
        d = s.recv(2048)
        return "reply:%d" % len(d)
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "none"

def dgram(dst, port):
    # broadcast / multicast request: unconnected, answered by a unicast reply
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(WAIT)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.sendto(b"hello", (dst, port))
    try:
        d, a = s.recvfrom(2048)
        return "reply:%s" % a[0]
    except (socket.timeout, TimeoutError):
        return "none"

def ping(dst, ident):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(WAIT)
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"bpfilter"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (dst, 0))
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        try:
            d, a = s.recvfrom(2048)
        except (socket.timeout, TimeoutError):
            break
        ihl = (d[0] & 15) * 4
        t, code = d[ihl], d[ihl + 1]
        if t == 0 and struct.unpack("!H", d[ihl + 4:ihl + 6])[0] == ident:
            return "reply"
        if t in (3, 11) and len(d) >= ihl + 8 + 28:
            inner = d[ihl + 8:]
            iihl = (inner[0] & 15) * 4
            if inner[9] == 1 and struct.unpack("!H", inner[iihl + 4:iihl + 6])[0] == ident:
                return "icmp:%d/%d" % (t, code)
    return "none"

def raw_tcp(dst, port, flags, sport):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP); s.settimeout(WAIT)
    s.sendto(tcp_seg("10.1.0.2", dst, sport, port, flags, 1000, 1000 if flags & 16 else 0),
             (dst, 0))
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        try:
            d, a = s.recvfrom(2048)
        except (socket.timeout, TimeoutError):
            break
        ihl = (d[0] & 15) * 4
        sp, dp = struct.unpack("!HH", d[ihl:ihl + 4])
        if a[0] == dst and sp == port and dp == sport:
            return "flags:%d" % d[ihl + 13]
    return "none"

RUN = {"tcp": tcp_flow, "udp": udp_flow, "ping": ping, "raw": raw_tcp, "dgram": dgram}
for f in flows:
    try:
        out.append(RUN[f[0]](*f[1:]))
    except OSError as e:  # e.g. an ICMP error reported on a later send: an outcome too
        out.append("oserror:%d" % e.errno)
print(json.dumps(out))
"""

# TCP flag values for crafted segments (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32).
RAW_FLAGS = (2, 18, 16, 1, 3, 6, 0, 41, 4, 17, 24)


def random_flows(rng: random.Random, n: int) -> list[list]:
    """Seeded flows; ports and crafted-segment source ports come from the seed."""
    flows: list[list] = []
    for _ in range(n):
        dst = rng.choice((SRV, SRV, DUT_CLI))
        kind = rng.choice(("tcp", "tcp", "udp", "ping", "raw", "raw", "dgram"))
        if kind == "dgram":  # broadcast / multicast to dut (addrtype BROADCAST, MULTICAST)
            flows.append(["dgram", rng.choice(("10.1.0.255", "224.0.0.1", "255.255.255.255")),
                          rng.choice(UDP_OPEN + UDP_CLOSED)])
            continue
        if kind == "tcp":
            port = rng.choice(TCP_OPEN + TCP_CLOSED)
            flows.append(["tcp", dst, port, rng.choice((1, 12, 3000)), rng.choice(("fin", "rst"))])
        elif kind == "udp":
            flows.append(["udp", dst, rng.choice(UDP_OPEN + UDP_CLOSED)])
        elif kind == "ping":
            flows.append(["ping", dst, rng.randrange(1, 65535)])
        else:
            flows.append(["raw", dst, rng.choice(TCP_OPEN + TCP_CLOSED), rng.choice(RAW_FLAGS),
                          rng.randrange(20000, 30000)])
    return flows


@dataclass
class StatefulTwin:
    """One cli — dut — srv lab with echo servers running."""

    topo: Topology
    servers: list[subprocess.Popen]

    @classmethod
    def create(cls, name: str) -> StatefulTwin:
        topo = Topology(name)
        try:
            topo.veth("cli", "cli0", "dut", "dcli0")
            topo.veth("dut", "dsrv0", "srv", "srv0")
            topo.addr("cli", "cli0", f"{CLI}/24")
            topo.addr("dut", "dcli0", f"{DUT_CLI}/24")
            topo.addr("dut", "dsrv0", f"{DUT_SRV}/24")
            topo.addr("srv", "srv0", f"{SRV}/24")
            topo.route("cli", "default", "via", DUT_CLI)
            topo.route("srv", "default", "via", DUT_SRV)
            topo.sysctl("dut", "net/ipv4/ip_forward", 1)
            servers = [cls._server(topo, role) for role in ("dut", "srv")]
        except BaseException:
            topo.close()
            raise
        return cls(topo, servers)

    @staticmethod
    def _server(topo: Topology, role: str) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", topo.ns(role), "python3", "-c", SERVER],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            p.kill()
            raise RuntimeError(f"echo server in {role} did not start: {p.stderr.read()}")
        return p

    @property
    def lab(self) -> SimpleNamespace:
        """What verify.differential backends expect (`lab.topo` with a "dut" role)."""
        return SimpleNamespace(topo=self.topo)

    def run(self, flows: list[list]) -> list[str]:
        proc = subprocess.run(["ip", "netns", "exec", self.topo.ns("cli"), "python3", "-c",
                               CLIENT], input=json.dumps(flows), capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"client failed: {proc.stderr.strip()[-800:]}")
        return json.loads(proc.stdout)

    def reset(self) -> None:
        """Forget conntrack state in dut so each ruleset starts alike."""
        self.topo.fork("dut", _flush_conntrack)

    def close(self) -> None:
        for p in self.servers:
            p.kill()
            p.wait()
        self.topo.close()


def _flush_conntrack() -> None:
    from pyroute2 import Conntrack

    with Conntrack() as ct:
        ct.flush()
