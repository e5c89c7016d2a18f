"""Craft Ethernet/IPv4/IPv6 frames with struct, each carrying a findable tag.

The differential harness must know, for every frame it sends, whether that
exact frame got through.  So every frame carries ``MAGIC + tag`` (8 bytes, the
tag a unique u32): in its L4 payload normally, in each fragment's own data for
fragments, and in an IPv4 option / IPv6 destination option when the L4 header
is deliberately truncated and has no room.  `find_tags` recovers the tags from
whatever a capture saw (a reassembled datagram yields every fragment's tag).

`PacketSpec` is the pure description (what the generator chooses);
`build_frames` turns it into wire bytes.  Checksums are always correct, so a
packet is only ever dropped for what the ruleset says, never for a bad sum.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace

MAGIC = b"\xb9\xf1\x7e\x42"
TAG_LEN = len(MAGIC) + 4

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6_FRAG = 44
IPPROTO_ICMPV6 = 58
IPPROTO_DSTOPTS = 60

TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
             "ECE": 0x40, "CWR": 0x80}

# IPv4 option types (RFC 791 / RFC 4727).
IPOPT_END, IPOPT_NOOP, IPOPT_RR, IPOPT_TS, IPOPT_RA = 0, 1, 7, 68, 148
IPOPT_EXP_TAG = 0x9E  # experimental (copied, class 0, number 30): Linux ignores it on receive
IP6OPT_EXP_TAG = 0x1E  # experimental, action bits 00 = skip if unknown


def tag_bytes(tag: int) -> bytes:
    return MAGIC + struct.pack("!I", tag)


def find_tags(data: bytes) -> set[int]:
    """Every tag present in ``data`` (a frame, an IP datagram or a reassembled payload)."""
    tags = set()
    pos = data.find(MAGIC)
    while pos >= 0 and pos + TAG_LEN <= len(data):
        tags.add(struct.unpack_from("!I", data, pos + len(MAGIC))[0])
        pos = data.find(MAGIC, pos + 1)
    return tags


# --- checksums -------------------------------------------------------------
def checksum(data: bytes) -> int:
    """RFC 1071 internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, proto, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, proto)


def _with_l4_checksum(src: str, dst: str, proto: int, segment: bytes, offset: int) -> bytes:
    pseudo = _pseudo_header(src, dst, proto, len(segment))
    blank = segment[:offset] + b"\0\0" + segment[offset + 2 :]
    value = checksum(pseudo + blank)
    if proto == IPPROTO_UDP and value == 0:
        value = 0xFFFF
    return blank[:offset] + struct.pack("!H", value) + blank[offset + 2 :]


# --- L2 / L3 -----------------------------------------------------------------
def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def ether(dst_mac: str, src_mac: str, ethertype: int, payload: bytes) -> bytes:
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + payload


def ipv4_header(src: str, dst: str, proto: int, payload_len: int, *, ttl: int = 64,
                tos: int = 0, ident: int = 0, df: bool = False, mf: bool = False,
                frag_offset: int = 0, options: bytes = b"") -> bytes:
    """IPv4 header with checksum; ``frag_offset`` is in bytes (multiple of 8)."""
    if len(options) % 4:
        options += bytes([IPOPT_END]) * (4 - len(options) % 4)
    ihl = 5 + len(options) // 4
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + payload_len, ident, flags,
                      ttl, proto, 0, ipaddress.IPv4Address(src).packed,
                      ipaddress.IPv4Address(dst).packed) + options
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]


def ipv6_header(src: str, dst: str, next_header: int, payload_len: int, *, hlim: int = 64,
                tclass: int = 0, flow: int = 0) -> bytes:
    return struct.pack("!IHBB16s16s", (6 << 28) | (tclass << 20) | flow, payload_len,
                       next_header, hlim, ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed)


def ipv4_option_tag(tag: int) -> bytes:
    """An experimental IPv4 option carrying the tag, padded with NOPs to 12 bytes."""
    return bytes([IPOPT_EXP_TAG, 2 + TAG_LEN]) + tag_bytes(tag) + bytes([IPOPT_NOOP] * 2)


def ipv4_option_rr(slots: int = 2) -> bytes:
    """Record-route option with empty slots (routers fill it in when forwarding)."""
    return bytes([IPOPT_RR, 3 + 4 * slots, 4]) + bytes(4 * slots) + bytes([IPOPT_NOOP])


def ipv4_option_ra() -> bytes:
    return bytes([IPOPT_RA, 4, 0, 0])


def ipv6_dstopts(next_header: int, options: bytes) -> bytes:
    """A Destination Options header holding ``options`` (TLVs), PadN-padded to 8n bytes."""
    pad = -(2 + len(options)) % 8
    if pad == 1:
        padding = b"\x00"  # Pad1
    elif pad:
        padding = bytes([1, pad - 2]) + bytes(pad - 2)
    else:
        padding = b""
    body = options + padding
    return bytes([next_header, (2 + len(body)) // 8 - 1]) + body


IP6OPT_PADN_4 = bytes([1, 4, 0, 0, 0, 0])  # a harmless option: PadN of 4 bytes


def ipv6_dstopts_tag(next_header: int, tag: int) -> bytes:
    """Destination options header with an experimental skip-if-unknown option holding the tag."""
    body = bytes([IP6OPT_EXP_TAG, TAG_LEN]) + tag_bytes(tag)  # 10 bytes
    body += bytes([1, 2, 0, 0])  # PadN to 16 bytes with the 2 header bytes
    return bytes([next_header, 1]) + body


# --- L4 ----------------------------------------------------------------------
def tcp_options(mss: int | None = None, wscale: int | None = None, sack_perm: bool = False,
                timestamp: tuple[int, int] | None = None) -> bytes:
    out = b""
    if mss is not None:
        out += struct.pack("!BBH", 2, 4, mss)
    if sack_perm:
        out += b"\x04\x02"
    if timestamp is not None:
        out += b"\x01\x01" + struct.pack("!BBII", 8, 10, *timestamp)
    if wscale is not None:
        out += b"\x01" + struct.pack("!BBB", 3, 3, wscale)
    if len(out) % 4:
        out += b"\x01" * (4 - len(out) % 4)
    return out


def tcp_segment(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes = b"",
                *, seq: int = 1, ack: int = 0, window: int = 65535, options: bytes = b"",
                urg: int = 0) -> bytes:
    doff = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, urg)
    return _with_l4_checksum(src, dst, IPPROTO_TCP, hdr + options + payload, 16)


def udp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> bytes:
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return _with_l4_checksum(src, dst, IPPROTO_UDP, hdr + payload, 6)


def icmp_message(icmp_type: int, code: int, rest: bytes = b"\0\0\0\0",
                 payload: bytes = b"") -> bytes:
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def icmpv6_message(src: str, dst: str, icmp_type: int, code: int, rest: bytes = b"\0\0\0\0",
                   payload: bytes = b"") -> bytes:
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return _with_l4_checksum(src, dst, IPPROTO_ICMPV6, body, 2)


# ICMP types that carry the offending datagram's header ("errors").
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})
ICMPV6_ERROR_TYPES = frozenset({1, 2, 3, 4})


# --- the pure description ------------------------------------------------------
@dataclass(frozen=True)
class PacketSpec:
    """What one test packet is; `build_frames` makes bytes from it.

    ``fragment``: None (whole datagram), "all" (first, middle and last fragment
    as three frames), "first", "middle" or "last" (just that one).
    ``truncate``: keep only this many bytes of the L4 header (the tag then
    travels in an IP option).  ``ip_options``: IPv4 option bytes, or for IPv6
    destination-option TLVs (sent as a Destination Options header).
    ``length``: pad the payload so the IP datagram is at least this long.
    ``ident``: the IPv4 id / IPv6 fragment id (the generators set it).
    """

    src: str
    dst: str
    proto: int = IPPROTO_UDP
    sport: int = 1024
    dport: int = 80
    tcp_flags: int = TCP_FLAGS["SYN"]
    tcp_opts: bytes = b""
    icmp_type: int = 8
    icmp_code: int = 0
    fragment: str | None = None
    first_frag_l4: int | None = None  # bytes of L4 header in a first fragment (tiny frags)
    truncate: int | None = None
    ip_options: bytes = b""
    length: int = 0
    ttl: int = 64
    tos: int = 0
    df: bool = False
    ident: int = 0
    tags: tuple[int, ...] = ()
    note: str = field(default="", compare=False)

    @property
    def family(self) -> int:
        return 6 if ":" in self.src else 4

    @property
    def frame_count(self) -> int:
        return 3 if self.fragment == "all" else 1

    def with_tags(self, first_tag: int) -> PacketSpec:
        """Give each frame of this packet a tag: first_tag, first_tag+1, ..."""
        return replace(self, tags=tuple(range(first_tag, first_tag + self.frame_count)))

    def describe(self) -> str:
        parts = [f"{self.src} > {self.dst}", f"proto {self.proto}"]
        if self.proto in (IPPROTO_TCP, IPPROTO_UDP):
            parts.append(f"{self.sport} > {self.dport}")
        if self.proto == IPPROTO_TCP:
            flags = [n for n, b in TCP_FLAGS.items() if self.tcp_flags & b]
            parts.append("flags " + ",".join(flags or ["none"]))
        if self.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            parts.append(f"type {self.icmp_type}/{self.icmp_code}")
        for name in ("fragment", "truncate", "first_frag_l4"):
            if getattr(self, name) is not None:
                parts.append(f"{name} {getattr(self, name)}")
        if self.ip_options:
            parts.append(f"ipopts {self.ip_options.hex()}")
        if self.length:
            parts.append(f"len>={self.length}")
        if self.note:
            parts.append(f"[{self.note}]")
        return " ".join(parts)


def _l4_header(spec: PacketSpec) -> bytes:
    """The L4 header alone (checksum filled in later over the whole datagram)."""
    if spec.proto == IPPROTO_TCP:
        doff = (20 + len(spec.tcp_opts)) // 4
        return struct.pack("!HHIIBBHHH", spec.sport, spec.dport, 1, 0, doff << 4,
                           spec.tcp_flags, 65535, 0, 0) + spec.tcp_opts
    if spec.proto == IPPROTO_UDP:
        return struct.pack("!HHHH", spec.sport, spec.dport, 0, 0)
    if spec.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        return struct.pack("!BBHI", spec.icmp_type, spec.icmp_code, 0, 0x12340001)
    return b""


def _icmp_error_body(spec: PacketSpec) -> bytes:
    """The offending datagram an ICMP error quotes: its IP header + 8 L4 bytes."""
    inner_l4 = struct.pack("!HHHH", spec.dport, spec.sport, 8, 0)
    if spec.family == 4:
        return ipv4_header(spec.dst, spec.src, IPPROTO_UDP, 8, ident=0x4242) + inner_l4
    return ipv6_header(spec.dst, spec.src, IPPROTO_UDP, 8) + inner_l4


def _finish_l4(spec: PacketSpec, segment: bytes) -> bytes:
    """Fill the length/checksum fields of a complete L4 segment."""
    if spec.proto == IPPROTO_TCP:
        return _with_l4_checksum(spec.src, spec.dst, IPPROTO_TCP, segment, 16)
    if spec.proto == IPPROTO_UDP:
        segment = segment[:4] + struct.pack("!H", len(segment)) + segment[6:]
        return _with_l4_checksum(spec.src, spec.dst, IPPROTO_UDP, segment, 6)
    if spec.proto == IPPROTO_ICMP:
        segment = segment[:2] + b"\0\0" + segment[4:]
        return segment[:2] + struct.pack("!H", checksum(segment)) + segment[4:]
    if spec.proto == IPPROTO_ICMPV6:
        return _with_l4_checksum(spec.src, spec.dst, IPPROTO_ICMPV6, segment, 2)
    return segment


def _pad(data: bytes, multiple: int) -> bytes:
    return data + bytes(-len(data) % multiple)


def ip_datagrams(spec: PacketSpec) -> list[bytes]:
    """The IP datagrams (no Ethernet header) for ``spec``, one per frame."""
    if not spec.tags:
        raise ValueError("PacketSpec has no tags; call with_tags() first")
    header = _l4_header(spec)
    errors = ICMP_ERROR_TYPES if spec.family == 4 else ICMPV6_ERROR_TYPES
    quoted = _icmp_error_body(spec) if spec.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and \
        spec.icmp_type in errors else b""

    if spec.truncate is not None:
        # L4 header cut short: no payload, the tag rides in the IP header instead.
        return [_ip(spec, header[: spec.truncate], spec.tags[0], tag_in_ip=True)]

    if spec.fragment is None:
        payload = quoted + tag_bytes(spec.tags[0])
        minimum = spec.length - _ip_overhead(spec) - len(header)
        payload += bytes(max(0, minimum - len(payload)))
        return [_ip(spec, _finish_l4(spec, header + payload), spec.tags[0])]

    # Fragments: the datagram is chunks of 8-byte multiples, each opening with its tag.
    first_l4 = len(header) if spec.first_frag_l4 is None else spec.first_frag_l4
    tags = spec.tags if spec.fragment == "all" else (spec.tags[0],) * 3
    chunk0 = header + quoted + tag_bytes(tags[0])
    if first_l4 < len(header):  # tiny first fragment: the L4 header spans two fragments
        if first_l4 % 8:
            raise ValueError("first_frag_l4 must be a multiple of 8")
        chunk0 = header[:first_l4]
        chunk1_prefix = header[first_l4:] + quoted
    else:
        chunk1_prefix = b""
    chunk0 = _pad(chunk0, 8)
    chunk1 = _pad(chunk1_prefix + tag_bytes(tags[1]), 8)
    chunk2 = tag_bytes(tags[2]) + bytes(max(0, spec.length - _ip_overhead(spec) - len(chunk0)
                                            - len(chunk1) - TAG_LEN))
    whole = _finish_l4(spec, chunk0 + chunk1 + chunk2)
    pieces = [(0, whole[: len(chunk0)], True),
              (len(chunk0), whole[len(chunk0) : len(chunk0) + len(chunk1)], True),
              (len(chunk0) + len(chunk1), whole[len(chunk0) + len(chunk1) :], False)]
    wanted = {"all": (0, 1, 2), "first": (0,), "middle": (1,), "last": (2,)}[spec.fragment]
    tiny = first_l4 < len(header)  # its first fragment has no room: tag goes in the IP header
    return [_ip(spec, pieces[i][1], tags[i], frag=(pieces[i][0], pieces[i][2]),
                tag_in_ip=tiny and i == 0) for i in wanted]


def _ip_overhead(spec: PacketSpec) -> int:
    if spec.family == 4:
        return 20 + len(spec.ip_options)
    return 40 + (len(ipv6_dstopts(0, spec.ip_options)) if spec.ip_options else 0)


def _ip(spec: PacketSpec, l4: bytes, tag: int, *, tag_in_ip: bool = False,
        frag: tuple[int, bool] | None = None) -> bytes:
    if spec.family == 4:
        options = spec.ip_options + (ipv4_option_tag(tag) if tag_in_ip else b"")
        offset, mf = frag if frag else (0, False)
        return ipv4_header(spec.src, spec.dst, spec.proto, len(l4), ttl=spec.ttl, tos=spec.tos,
                           ident=spec.ident, df=spec.df and frag is None, mf=mf,
                           frag_offset=offset, options=options) + l4
    ext = b""
    next_header = spec.proto
    if tag_in_ip:
        ext = ipv6_dstopts_tag(next_header, tag)
        next_header = IPPROTO_DSTOPTS
    if frag is not None:
        offset, mf = frag
        ext = struct.pack("!BBHI", next_header, 0, offset | int(mf), spec.ident) + ext
        next_header = IPPROTO_IPV6_FRAG
    if spec.ip_options:  # IPv6: a Destination Options header, before any fragment header
        ext = ipv6_dstopts(next_header, spec.ip_options) + ext
        next_header = IPPROTO_DSTOPTS
    return ipv6_header(spec.src, spec.dst, next_header, len(ext) + len(l4), hlim=spec.ttl,
                       tclass=spec.tos) + ext + l4


def build_frames(spec: PacketSpec, src_mac: str, dst_mac: str) -> list[bytes]:
    """Ethernet frames for ``spec`` (one per tag), ready for an AF_PACKET socket."""
    ethertype = ETH_P_IP if spec.family == 4 else ETH_P_IPV6
    return [ether(dst_mac, src_mac, ethertype, d) for d in ip_datagrams(spec)]
