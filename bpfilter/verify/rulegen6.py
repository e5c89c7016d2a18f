"""Seeded random ip6tables rulesets and IPv6 packets aimed at them, for the router lab.

Why a generator of its own: IPv6 rules match things IPv4 has no word for (extension
header chains, hop limit, icmpv6 types), and the packets must carry those chains —
hop-by-hop, destination options, routing, fragment headers, in random orders,
sometimes truncated — so that ipv6_find_hdr's corner cases meet the rules.
Addresses follow bpfilter.verify.router's IPv6 plan: local fd10::/16, forwarded
2001:db8::/32, sources fd20::/16; plus link-local and multicast neighbor discovery.
Every packet carries a tag in its last bytes (seen by INPUT's raw sockets and by
the sink's taps).
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass

from bpfilter.verify.packets import (
    ETH_P_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    _with_l4_checksum,
    ether,
    ipv6_dstopts_tag,
    ipv6_header,
    tag_bytes,
)

SOURCES = ("fd20::1", "fd20::2:1", "fd20:0:0:1::5", "fd20:ab::7", "fd20:ab::8")
LOCALS = ("fd10::1", "fd10::2", "fd10:1::3", "fd00:64::1")
FORWARDS = ("2001:db8::1", "2001:db8::2", "2001:db8:8000::1", "2001:db8:1::2")
LINK_LOCAL = "fe80::b5ff:fe00:1"  # the sender's link-local address (EUI-64 of its MAC)
PORTS = (22, 53, 80, 443, 1024, 1025, 8080)
ICMP6_TYPES = ("echo-request", "echo-reply", "destination-unreachable", "1/3",
               "packet-too-big", "neighbour-solicitation", "neighbour-advertisement",
               "router-solicitation", "128", "129/0", "135")
ICMP6_SENT = ((128, 0), (129, 0), (1, 3), (1, 0), (2, 0), (135, 0), (136, 0), (133, 0))
HEADERS = ("hop", "dst", "route", "frag", "ah", "esp", "none", "prot")
NH_HOP, NH_ROUTING, NH_FRAG, NH_ESP, NH_AUTH, NH_NONE, NH_DST = 0, 43, 44, 50, 51, 59, 60


@dataclass(frozen=True)
class Ruleset6:
    seed: int
    text: str


def _addr(rng: random.Random, pool: tuple[str, ...]) -> str:
    a = rng.choice(pool)
    r = rng.random()
    if r < 0.5:
        return f"{a}/128" if rng.random() < 0.5 else a
    if r < 0.85:
        plen = rng.choice((16, 32, 48, 64, 96, 112, 127))
        net = ipaddress.IPv6Network(f"{a}/{plen}", strict=False)
        return f"{net.network_address}/{plen}"
    # non-contiguous mask, printed by ip6tables as a mask
    mask = rng.choice(("ffff:0:ffff::", "ffff:ffff::ffff", "0:ffff::", "ff00::ff"))
    masked = ipaddress.IPv6Address(int(ipaddress.IPv6Address(a)) &
                                   int(ipaddress.IPv6Address(mask)))
    return f"{masked}/{mask}"


def _neg(rng: random.Random, p: float = 0.2) -> str:
    return "! " if rng.random() < p else ""


def _ports(rng: random.Random) -> str:
    a = rng.choice(PORTS)
    if rng.random() < 0.3:
        return f"{a}:{a + rng.choice((0, 1, 100, 10000))}"
    return str(a)


def _rule(rng: random.Random, chain: str, targets: list[str]) -> str:
    parts: list[str] = []
    pools = {"INPUT": LOCALS, "FORWARD": FORWARDS, "OUTPUT": SOURCES}
    if rng.random() < 0.35:
        parts.append(f"{_neg(rng)}-s {_addr(rng, SOURCES + (LINK_LOCAL,))}")
    if rng.random() < 0.35:
        parts.append(f"{_neg(rng)}-d {_addr(rng, pools.get(chain, LOCALS + FORWARDS))}")
    if chain in ("INPUT", "FORWARD", "USER") and rng.random() < 0.15:
        parts.append(f"{_neg(rng)}-i {rng.choice(('in0', 'in+', 'lo', 'out0'))}")
    if chain in ("FORWARD", "OUTPUT") and rng.random() < 0.15:
        parts.append(f"{_neg(rng)}-o {rng.choice(('out0', 'out1', 'out+', 'in0'))}")
    r = rng.random()
    if r < 0.3:
        neg = _neg(rng, 0.1)
        parts.append(f"{neg}-p tcp")
        if not neg:
            if rng.random() < 0.5:
                parts.append(f"--dport {_neg(rng)}{_ports(rng)}".replace("--dport ! ",
                                                                         "! --dport "))
            if rng.random() < 0.3:
                parts.append(f"{_neg(rng)}--sport {_ports(rng)}")
            if rng.random() < 0.2:
                parts.append(f"{_neg(rng)}--syn")
            if rng.random() < 0.15:
                parts.append(f"-m multiport {_neg(rng)}--dports 22,80,1000:2000")
    elif r < 0.5:
        neg = _neg(rng, 0.1)
        parts.append(f"{neg}-p udp")
        if not neg and rng.random() < 0.6:
            parts.append(f"{_neg(rng)}--dport {_ports(rng)}")
    elif r < 0.7:
        parts.append("-p ipv6-icmp" if rng.random() < 0.5 else "-p icmpv6")
        if rng.random() < 0.8:
            parts.append(f"-m icmp6 {_neg(rng)}--icmpv6-type {rng.choice(ICMP6_TYPES)}")
    elif r < 0.75:
        parts.append(rng.choice(("-p all", "-p 59", "-p esp", "! -p udp", "-p ah", "-p 0")))
    for _ in range(rng.choice((0, 1, 1, 2))):
        parts.append(_ext_match(rng))
    if rng.random() < 0.1:
        states = ",".join(rng.sample(("NEW", "ESTABLISHED", "RELATED", "INVALID",
                                      "UNTRACKED"), rng.choice((1, 2))))
        parts.append(rng.choice((f"-m conntrack {_neg(rng)}--ctstate {states}",
                                 f"-m state {_neg(rng)}--state {states}",
                                 f"-m conntrack --ctdir {rng.choice(('ORIGINAL', 'REPLY'))}")))
    parts.append(_target(rng, chain, targets))
    return " ".join(p for p in parts if p)


def _ext_match(rng: random.Random) -> str:
    kind = rng.choice(("hl", "frag", "hbh", "dst", "rt", "ipv6header", "ipv6header"))
    if kind == "hl":
        op = rng.choice(("--hl-eq", "! --hl-eq", "--hl-lt", "--hl-gt"))
        return f"-m hl {op} {rng.choice((1, 2, 5, 64, 255))}"
    if kind == "frag":
        opts = []
        if rng.random() < 0.4:
            lo = rng.choice((0, 5, 100))
            opts.append(f"{_neg(rng)}--fragid {lo}:{lo + rng.choice((0, 10, 1000))}")
        if rng.random() < 0.5:
            opts.append("--fragfirst")
        if rng.random() < 0.3:
            opts.append(rng.choice(("--fragmore", "--fraglast")))
        if rng.random() < 0.15:
            opts.append("--fragres")
        return "-m frag " + " ".join(opts)
    if kind in ("hbh", "dst"):
        opt = f" {_neg(rng)}--{kind}-len {rng.choice((8, 16, 24))}" if rng.random() < 0.5 else ""
        return f"-m {kind}{opt}"
    if kind == "rt":
        opts = []
        if rng.random() < 0.4:
            opts.append(f"{_neg(rng)}--rt-type {rng.choice((0, 2, 4))}")
        if rng.random() < 0.4:
            opts.append(f"{_neg(rng)}--rt-segsleft {rng.choice(('0', '0:1', '1', '2:5'))}")
        if rng.random() < 0.3:
            opts.append(f"{_neg(rng)}--rt-len {rng.choice((8, 24, 40))}")
        return "-m rt " + " ".join(opts)
    hdrs = rng.sample(HEADERS, rng.choice((1, 1, 2, 3)))
    soft = " --soft" if rng.random() < 0.5 else ""
    return f"-m ipv6header {_neg(rng, 0.3)}--header {','.join(hdrs)}{soft}"


def _target(rng: random.Random, chain: str, targets: list[str]) -> str:
    r = rng.random()
    if r < 0.06:  # run by netfilter (hand-off): the reply / log line are its own
        return rng.choice(("-j REJECT", "-j REJECT --reject-with icmp6-adm-prohibited",
                           "-j LOG --log-prefix h11", "-j LOG",
                           "-m limit --limit 1000/sec --limit-burst 1000 -j DROP"))
    if r < 0.35:
        return "-j ACCEPT"
    if r < 0.7:
        return "-j DROP"
    if r < 0.78:
        return ""
    if r < 0.85 and chain not in ("INPUT", "FORWARD", "OUTPUT"):
        return "-j RETURN"
    if targets:
        return f"{'-g' if rng.random() < 0.2 else '-j'} {rng.choice(targets)}"
    return "-j DROP"


def ruleset6(seed: int, rules: int = 30) -> Ruleset6:
    """A random filter table (user chains only called from earlier chains: no loops)."""
    rng = random.Random(seed)
    users = [f"U{i}" for i in range(rng.choice((0, 1, 2, 3)))]
    body: dict[str, list[str]] = {c: [] for c in ("INPUT", "FORWARD", "OUTPUT", *users)}
    for _ in range(rules):
        chain = rng.choice(list(body))
        later = users[users.index(chain) + 1:] if chain in users else users
        body[chain].append(_rule(rng, "USER" if chain in users else chain, later))
    pol = {c: rng.choice(("ACCEPT", "DROP")) for c in ("INPUT", "FORWARD")}
    lines = ["*filter", f":INPUT {pol['INPUT']} [0:0]", f":FORWARD {pol['FORWARD']} [0:0]",
             ":OUTPUT ACCEPT [0:0]", *(f":{u} - [0:0]" for u in users)]
    for chain, rules_ in body.items():
        lines += [f"-A {chain} {r}".rstrip() for r in rules_]
    lines.append("COMMIT")
    return Ruleset6(seed, "\n".join(lines) + "\n")


# --- packets ----------------------------------------------------------------------------
def _ext(nh: int, kind: int, rng: random.Random, aim: dict | None = None) -> bytes:
    """One extension header of `kind` whose next header is `nh`."""
    aim = aim or {}
    if kind in (NH_HOP, NH_DST):
        n = aim.get(("len", kind), rng.choice((0, 0, 1)))
        body = bytes([1, 4 + 8 * n, 0, 0, 0, 0]) + bytes(8 * n)  # one PadN
        return bytes([nh, n]) + body
    if kind == NH_ROUTING:
        rtype = aim.get("rt_type", rng.choice((0, 2, 4)))
        n = aim.get("rt_n", 2 if rtype in (0, 2) else rng.choice((0, 2)))
        segleft = aim.get("rt_segleft", 0)
        return bytes([nh, n, rtype, segleft]) + bytes(4 + 8 * n)
    if kind == NH_AUTH:
        return bytes([nh, 1, 0, 0]) + struct.pack("!II", 0x100, 1)  # 12 bytes: hdrlen 1
    raise ValueError(kind)


@dataclass(frozen=True)
class Packet6:
    """One frame: what it is (for reports) and its bytes."""

    tag: int
    note: str
    datagram: bytes

    def frame(self, src_mac: str, dst_mac: str) -> bytes:
        return ether(dst_mac, src_mac, ETH_P_IPV6, self.datagram)


def packets6(seed: int, count: int, first_tag: int) -> list[Packet6]:
    rng = random.Random(seed * 7919 + 1)
    out: list[Packet6] = []
    tag = first_tag
    while len(out) < count:
        made = _packet(rng, tag)
        out += made
        tag += len(made)
    return out


def _l4(rng: random.Random, src: str, dst: str, proto: int, payload: bytes,
        aim: dict) -> bytes:
    sport = aim.get("sport", rng.choice(PORTS))
    dport = aim.get("dport", rng.choice(PORTS))
    if proto == IPPROTO_TCP:
        flags = aim.get("tcp_flags", rng.choice((0x02, 0x10, 0x12, 0x11, 0x04)))
        hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
        return _with_l4_checksum(src, dst, proto, hdr + payload, 16)
    if proto == IPPROTO_UDP:
        hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
        return _with_l4_checksum(src, dst, proto, hdr + payload, 6)
    if proto == IPPROTO_ICMPV6:
        t, c = aim.get("icmp", rng.choice(ICMP6_SENT))
        body = struct.pack("!BBHI", t, c, 0, 0) + payload
        return _with_l4_checksum(src, dst, proto, body, 2)
    return payload


def _packet(rng: random.Random, tag: int, aim: dict | None = None) -> list[Packet6]:
    aim = aim or {}
    r = rng.random() if not aim else 1.0
    hlim = aim.get("hlim", rng.choice((64, 64, 64, 255, 2, 1)))
    if r < 0.08:  # neighbor solicitation from the sender's link-local address
        target = rng.choice(("fd00:64::1", "fe80::b5ff:fe00:100"))
        dst = "ff02::1:ff00:1" if rng.random() < 0.5 else "fd00:64::1"
        src = LINK_LOCAL if rng.random() < 0.8 else "::"
        body = struct.pack("!BBHI", 135, 0, 0, 0) + ipaddress.IPv6Address(target).packed
        l4 = _with_l4_checksum(src, dst, IPPROTO_ICMPV6, body + tag_bytes(tag), 2)
        dg = ipv6_header(src, dst, IPPROTO_ICMPV6, len(l4), hlim=255) + l4
        return [Packet6(tag, f"NS {src} > {dst}", dg)]
    src = aim.get("src") or (rng.choice(SOURCES) if rng.random() < 0.9 else LINK_LOCAL)
    dst = aim.get("dst") or rng.choice(LOCALS if rng.random() < 0.5 else FORWARDS)
    proto = aim.get("proto") or rng.choice((IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDP,
                                            IPPROTO_ICMPV6, NH_NONE, NH_ESP))
    chain = list(aim["chain"]) if "chain" in aim else [
        rng.choice((NH_HOP, NH_DST, NH_ROUTING, NH_FRAG, NH_AUTH))
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3)))]
    if NH_HOP in chain:  # only first, else ip6_rcv drops it (hop-by-hop must lead)
        chain = [NH_HOP] + [k for k in chain if k != NH_HOP]
    payload = tag_bytes(tag) + bytes(rng.choice((0, 8)))
    l4 = _l4(rng, src, dst, proto, payload, aim)
    note = f"{src} > {dst} hl {hlim} chain {chain} proto {proto}"
    trunc = rng.random()
    if trunc < 0.06 and proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6):
        cut = rng.choice((2, 4, 7, 12))  # L4 header cut short: tag in a dst option before it
        l4 = l4[:cut]
        chain = chain + [-1]
        note += f" l4 cut to {cut}"
    frag_split = NH_FRAG in chain and rng.random() < 0.5 and "frag_more" not in aim
    # build the chain back to front
    nh = proto
    ext = b""
    for kind in reversed(chain):
        if kind == -1:
            ext = ipv6_dstopts_tag(nh, tag) + ext
            nh = NH_DST
        elif kind == NH_FRAG:  # atomic fragment (offset 0), or a first one (M set)
            ext = struct.pack("!BBHI", nh, 0, int(aim.get("frag_more", False)),
                              aim.get("frag_id", tag)) + ext
            nh = NH_FRAG
        else:
            ext = _ext(nh, kind, rng, aim) + ext
            nh = kind
    if trunc > 0.97 and ext:  # the chain itself runs past the datagram's end
        dg_body = (ext + l4)[: rng.choice((len(ext) - 1, 42 - 40))] + tag_bytes(tag)
        note += " chain truncated"
        return [Packet6(tag, note, ipv6_header(src, dst, nh, len(dg_body), hlim=hlim) + dg_body)]
    if frag_split:
        return _fragments(src, dst, hlim, chain, nh, ext, l4, tag, note)
    return [Packet6(tag, note, ipv6_header(src, dst, nh, len(ext) + len(l4), hlim=hlim)
                    + ext + l4)]


def _fragments(src: str, dst: str, hlim: int, chain: list[int], nh: int, ext: bytes,
               l4: bytes, tag: int, note: str) -> list[Packet6]:
    """Replace the atomic fragment header by a real split: the first fragment carries
    the headers before and after the fragment header plus 8 bytes, the second the rest
    with a fresh tag (a non-first fragment: ipv6_find_hdr's fragoff case)."""
    # locate the fragment header inside ext by walking it
    pos, cur = 0, nh
    while cur != NH_FRAG:
        if cur == NH_AUTH:
            size = (ext[pos + 1] + 2) * 4
        else:
            size = (ext[pos + 1] + 1) * 8
        cur = ext[pos]
        pos += size
    before, fh, after = ext[:pos], ext[pos:pos + 8], ext[pos + 8:]
    inner = after + l4
    first_len = max(8, ((len(inner) - 1) // 8) * 8)
    if first_len >= len(inner):
        inner += bytes(8)
    p1, p2 = inner[:first_len], inner[first_len:] + tag_bytes(tag + 1)
    ident = tag
    f1 = fh[:2] + struct.pack("!HI", 1, ident)  # offset 0, M
    f2 = fh[:2] + struct.pack("!HI", first_len, ident)  # offset first_len, last
    d1 = ipv6_header(src, dst, nh, len(before) + 8 + len(p1), hlim=hlim) + before + f1 + p1
    d2 = ipv6_header(src, dst, nh, len(before) + 8 + len(p2), hlim=hlim) + before + f2 + p2
    return [Packet6(tag, note + " frag 1/2", d1), Packet6(tag + 1, note + " frag 2/2", d2)]


# --- packets aimed at the rules -----------------------------------------------------------
LOCAL_NETS = tuple(ipaddress.IPv6Network(n) for n in ("fd10::/16", "fd00:64::1/128"))
FORWARD_NET6 = ipaddress.IPv6Network("2001:db8::/32")
SOURCE_NETS = tuple(ipaddress.IPv6Network(n) for n in ("fd20::/16", "fe80::/10"))
IH_KINDS = {0: NH_HOP, 60: NH_DST, 43: NH_ROUTING, 44: NH_FRAG, 51: NH_AUTH}


def aimed_packets6(text: str, seed: int, count: int, first_tag: int) -> list[Packet6]:
    """Packets built to satisfy one rule each (then, sometimes, to just miss it): the
    corner cases of a rule are only reached by packets that get that far."""
    from bpfilter.frontend.parser import parse_restore
    from bpfilter.ir import Family

    table = parse_restore(text, family=Family.IPV6).table("filter")
    rules = [(c.name, r) for c in table.chains for r in c.rules] if table else []
    rng = random.Random(seed * 104729 + 3)
    out: list[Packet6] = []
    tag = first_tag
    while len(out) < count and rules:
        chain, rule = rng.choice(rules)
        aim = _aim(rule, chain, rng)
        if rng.random() < 0.3:
            _mutate(aim, rng)
        made = _packet(rng, tag, aim)
        out += made
        tag += len(made)
    return out


def _aim(rule: object, chain: str, rng: random.Random) -> dict:
    aim: dict = {}
    src, dst = getattr(rule, "src", None), getattr(rule, "dst", None)
    if src is not None and not src.negated:
        a = src.value.addr
        if any(a in n for n in SOURCE_NETS):
            aim["src"] = str(a)
    if dst is not None and not dst.negated:
        a = dst.value.addr
        if any(a in n for n in LOCAL_NETS) or a in FORWARD_NET6:
            aim["dst"] = str(a)
    if "dst" not in aim:
        aim["dst"] = rng.choice(FORWARDS if chain == "FORWARD" else LOCALS)
    proto = getattr(rule, "protocol", None)
    if proto is not None and not proto.negated and proto.value:
        aim["proto"] = int(proto.value)
    kinds: list[int] = []
    for m in getattr(rule, "matches", ()):
        for o in m.options:
            v = o.value
            if m.module in ("tcp", "udp") and o.name in ("dport", "sport") and not o.negated:
                aim[o.name] = rng.choice((v.lo, v.hi))
            elif m.module == "tcp" and o.name == "syn":
                aim["tcp_flags"] = 0x10 if o.negated else 0x02
            elif m.module == "icmp6":
                aim["icmp"] = (v.type, v.code_min) if not o.negated else (v.type, v.code_max)
            elif m.module == "hl":
                aim["hlim"] = (v + rng.choice((-1, 0, 0, 1))) % 256  # at the boundary
            elif m.module in ("hbh", "dst") and o.name.endswith("-len"):
                aim[("len", NH_HOP if m.module == "hbh" else NH_DST)] = max(0, v // 8 - 1)
            elif m.module == "rt":
                key = {"rt-type": "rt_type", "rt-segsleft": "rt_segleft", "rt-len": "rt_n"}
                val = v.lo if hasattr(v, "lo") else v
                aim[key[o.name]] = max(0, val // 8 - 1) if o.name == "rt-len" else val % 256
            elif m.module == "frag":
                if o.name == "fragid":
                    aim["frag_id"] = v.lo
                elif o.name in ("fragmore", "fraglast"):
                    aim["frag_more"] = o.name == "fragmore"
            elif m.module == "ipv6header" and o.name == "header":
                for p in v:
                    if p in IH_KINDS:
                        kinds.append(IH_KINDS[p])
                    elif p in (NH_ESP, NH_NONE) and "proto" not in aim:
                        aim["proto"] = p
        kind = {"hbh": NH_HOP, "dst": NH_DST, "rt": NH_ROUTING, "frag": NH_FRAG}.get(m.module)
        if kind is not None:
            kinds.append(kind)
    if kinds or rng.random() < 0.5:
        kinds = list(dict.fromkeys(kinds))
        rng.shuffle(kinds)
        if NH_HOP in kinds:
            kinds = [NH_HOP] + [k for k in kinds if k != NH_HOP]
        aim["chain"] = kinds
    return aim


def _mutate(aim: dict, rng: random.Random) -> None:
    """Move the packet just off the rule in one field."""
    what = rng.choice(("chain", "port", "src", "hlim", "proto"))
    if what == "chain" and aim.get("chain"):
        aim["chain"].pop(rng.randrange(len(aim["chain"])))
    elif what == "port" and "dport" in aim:
        aim["dport"] = (aim["dport"] + rng.choice((-1, 1))) % 65536
    elif what == "src":
        aim["src"] = rng.choice(SOURCES)
    elif what == "hlim":
        aim["hlim"] = (aim.get("hlim", 64) + rng.choice((-1, 1))) % 256
    else:
        aim["proto"] = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6))
