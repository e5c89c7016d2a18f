"""Send frames into one namespace and see which of them arrive in another.

Where to look decides what "arrived" means:
- INPUT path: raw IP sockets in the receiving namespace.  The kernel hands a
  raw socket a copy of every datagram of its protocol *after* the
  NF_INET_LOCAL_IN hook (and after reassembly), so it sees exactly what
  filter/INPUT let through.  AF_PACKET would not do: it taps before PREROUTING.
  One raw socket per IP protocol is needed (there is no "all protocols" raw
  receive socket).
- FORWARD path: an AF_PACKET socket on the interfaces of a sink namespace
  behind the router sees whatever the router forwarded.

Frames are sent with an AF_PACKET socket from the sender namespace.  Waiting
is bounded: capture stops once nothing new arrived for ``quiet`` seconds after
the last frame (or at ``timeout``).  Only namespaces given here are touched.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bpfilter.verify.netns import call_in_netns
from bpfilter.verify.packets import find_tags

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
IPV6_RECVDSTOPTS = 58
RCVBUF = 32 * 1024 * 1024


@dataclass
class Endpoint:
    """Where to capture: raw sockets (``protocols``) or AF_PACKET taps (``ifaces``) in ``netns``."""

    netns: str
    protocols: tuple[int, ...] = ()
    ifaces: tuple[str, ...] = ()
    family: int = 4


@dataclass
class Capture:
    """Tags seen per endpoint name, plus how many datagrams were read (for sanity checks)."""

    tags: dict[str, set[int]] = field(default_factory=dict)
    datagrams: dict[str, int] = field(default_factory=dict)

    def all_tags(self) -> set[int]:
        return set().union(*self.tags.values()) if self.tags else set()


def _open_raw(protocols: Iterable[int], family: int) -> list[socket.socket]:
    socks = []
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    for proto in protocols:
        sock = socket.socket(af, socket.SOCK_RAW, proto)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        if family == 6:  # the tag of a truncated packet sits in a destination option
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVDSTOPTS, 1)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def _open_taps(ifaces: Iterable[str]) -> list[socket.socket]:
    socks = []
    for iface in ifaces:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        sock.bind((iface, ETH_P_ALL))
        sock.setblocking(False)
        socks.append(sock)
    return socks


class Receiver:
    """Capture sockets opened inside their namespaces, drained by one background thread."""

    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self._owner: dict[int, str] = {}
        self._socks: list[socket.socket] = []
        self.capture = Capture({name: set() for name in endpoints},
                               {name: 0 for name in endpoints})
        self.last_arrival = time.monotonic()
        self._stop = threading.Event()
        try:
            for name, ep in endpoints.items():
                opened = call_in_netns(ep.netns, _open_raw, ep.protocols, ep.family)
                opened += call_in_netns(ep.netns, _open_taps, ep.ifaces)
                for sock in opened:
                    self._owner[sock.fileno()] = name
                self._socks += opened
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._drain, name="traffic-rx", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        poller = select.poll()
        for sock in self._socks:
            poller.register(sock.fileno(), select.POLLIN)
        by_fd = {s.fileno(): s for s in self._socks}
        while not self._stop.is_set():
            for fd, _ in poller.poll(50):
                self._read_all(by_fd[fd])

    def _read_all(self, sock: socket.socket) -> None:
        name = self._owner[sock.fileno()]
        is_tap = sock.family == socket.AF_PACKET
        while True:
            try:
                data, anc, _, addr = sock.recvmsg(65536, 1024)
            except BlockingIOError:
                return
            if is_tap and addr[2] == PACKET_OUTGOING:
                continue
            tags = find_tags(data)
            for _, _, cdata in anc:
                tags |= find_tags(cdata)
            self.capture.tags[name] |= tags
            self.capture.datagrams[name] += 1
            self.last_arrival = time.monotonic()

    def close(self) -> Capture:
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join()
        for sock in self._socks:
            self._read_all(sock)  # whatever came in after the last poll
            sock.close()
        self._socks = []
        return self.capture


def open_sender(netns: str, iface: str) -> socket.socket:
    """An AF_PACKET socket bound to ``iface`` inside ``netns``."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((iface, 0))
        return sock

    return call_in_netns(netns, make)


def send_frames(sock: socket.socket, frames: Sequence[bytes], *, burst: int = 64,
                pause: float = 0.0) -> None:
    """Send frames; a short pause every ``burst`` frames keeps receive queues from overflowing.

    On veth the receive side runs in the sender's softirq, so ``pause`` is
    usually unnecessary; it exists for slower paths (generic XDP, big rulesets).
    """
    for i, frame in enumerate(frames, 1):
        sock.send(frame)
        if pause and i % burst == 0:
            time.sleep(pause)


def exchange(sender: tuple[str, str], frames: Sequence[bytes], endpoints: dict[str, Endpoint],
             *, quiet: float = 0.15, timeout: float = 10.0, pause: float = 0.0,
             expect: set[int] | None = None) -> Capture:
    """Send ``frames`` from (netns, iface) and return which tags reached each endpoint.

    Bounded: waits at most ``timeout`` seconds after sending, and returns as
    soon as nothing has arrived for ``quiet`` seconds — or as soon as every
    tag in ``expect`` arrived somewhere (all there is to know about them).
    """
    receiver = Receiver(endpoints)
    try:
        sock = open_sender(*sender)
        try:
            send_frames(sock, frames, pause=pause)
        finally:
            sock.close()
        sent_at = time.monotonic()
        receiver.last_arrival = max(receiver.last_arrival, sent_at)
        while True:
            now = time.monotonic()
            if now - receiver.last_arrival >= quiet or now - sent_at >= timeout:
                break
            if expect and expect <= receiver.capture.all_tags():
                break
            time.sleep(min(quiet / 3, 0.01) if expect else quiet / 3)
    finally:
        capture = receiver.close()
    return capture

