"""Generic-option values of iptables 1.8.9: addresses, masks, protocols, interfaces.

Mirrors libxtables (``xtables_ipparse_multiple``, ``xtables_ip6parse_multiple``,
``xtables_parse_protocol``, ``xtables_parse_interface``) and the printing side
of iptables-save (``print_ip``, ``print_proto``, ``print_iface``).

Choice: host names are NOT resolved (a firewall load must not depend on DNS);
only literal addresses are accepted, a name is refused with iptables' own
"host/network `NAME' not found" message.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache, lru_cache

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.frontend.extensions.types import try_number
from bpfilter.ir import Address, Family

IFNAMSIZ = 16

# libxtables' xtables_chain_protos, consulted after /etc/protocols.
CHAIN_PROTOS: tuple[tuple[str, int], ...] = (
    ("tcp", 6), ("sctp", 132), ("udp", 17), ("udplite", 136), ("icmp", 1),
    ("icmpv6", 58), ("ipv6-icmp", 58), ("esp", 50), ("ah", 51), ("ipv6-mh", 135),
    ("mh", 135), ("all", 0),
)


@cache
def _protocols() -> tuple[dict[str, int], dict[int, str]]:
    """/etc/protocols as getprotobyname / getprotobynumber see it."""
    by_name: dict[str, int] = {}
    by_num: dict[int, str] = {}
    try:
        with open("/etc/protocols", encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) < 2 or not words[1].isdigit():
                    continue
                num = int(words[1])
                for n in (words[0], *words[2:]):
                    by_name.setdefault(n, num)
                by_num.setdefault(num, words[0])
    except OSError:
        pass
    return by_name, by_num


def parse_protocol(text: str) -> int:
    """xtables_parse_protocol: number 0-255, 'all', /etc/protocols name, builtin name."""
    v = try_number(text, 0, 255)
    if v is not None:
        return v
    if text == "all":
        return 0
    by_name, _ = _protocols()
    if text in by_name:
        return by_name[text]
    for name, num in CHAIN_PROTOS:
        if name == text:
            return num
    raise ExtensionError(f'unknown protocol "{text}" specified')


def proto_to_name(num: int) -> str | None:
    """iptables' proto_to_name: the name used to load the implicit match."""
    if num:
        name = _protocols()[1].get(num)
        if name:
            return name
    for name, n in CHAIN_PROTOS:
        if n == num:
            return name
    return None


def format_protocol(num: int) -> str:
    """print_proto's name: /etc/protocols first, then libxtables' table, else number."""
    name = _protocols()[1].get(num)
    if name:
        return name
    for n, p in CHAIN_PROTOS:
        if p == num:
            return n
    return str(num)


# Four plain decimal bytes without leading zeros: the common case, read without strtoui.
_DOTTED_QUAD = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                          r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def _ipv4_numeric(text: str, is_mask: bool) -> int | None:
    """xtables_numeric_to_ipaddr: 1-4 dotted parts, each a strtoui byte; short forms pad."""
    if _DOTTED_QUAD.fullmatch(text):
        a, b, c, d = text.split(".")
        return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    parts = text[:19].split(".", 3)
    if len(parts) < 4 and is_mask:
        return None
    vals: list[int] = []
    for p in parts:
        v = try_number(p, 0, 255)
        if v is None:
            return None
        vals.append(v)
    vals += [0] * (4 - len(vals))
    return (vals[0] << 24) | (vals[1] << 16) | (vals[2] << 8) | vals[3]


def _ipv6_numeric(text: str) -> int | None:
    """inet_pton(AF_INET6): no scope ids, no brackets."""
    if "%" in text or not text:
        return None
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _mask(text: str | None, family: Family) -> int:
    bits = family.bits
    full = (1 << bits) - 1
    if text is None:
        return full
    m = _ipv4_numeric(text, True) if family is Family.IPV4 else _ipv6_numeric(text)
    if m is not None:
        return m
    n = try_number(text, 0, bits)
    if n is None:
        raise ExtensionError(f"invalid mask `{text}' specified")
    return full ^ ((1 << (bits - n)) - 1)


def parse_addresses(text: str, family: Family) -> list[Address]:
    """A comma-separated list of addr[/mask]; each address is masked (addr &= mask)."""
    return list(_parse_addresses(text, family))


@lru_cache(maxsize=4096)
def _parse_addresses(text: str, family: Family) -> tuple[Address, ...]:
    """parse_addresses, memoized: big rulesets repeat the same networks."""
    out: list[Address] = []
    cls = ipaddress.IPv4Address if family is Family.IPV4 else ipaddress.IPv6Address
    for part in text.split(","):
        host, slash, mask_s = part.rpartition("/")
        if not slash:
            host, mask_s = part, None
        mask = _mask(mask_s, family)
        if mask == 0:
            host = "0.0.0.0" if family is Family.IPV4 else "::"
        a = _ipv4_numeric(host, False) if family is Family.IPV4 else _ipv6_numeric(host)
        if a is None:
            raise ExtensionError(f"host/network `{host}' not found")
        out.append(Address(cls(a & mask), cls(mask)))
    return tuple(out)


def parse_interface(text: str) -> str:
    """xtables_parse_interface: at most 15 characters; '+' at the end is a wildcard."""
    if len(text.encode()) + 1 > IFNAMSIZ:
        raise ExtensionError(
            f"interface name `{text}' must be shorter than IFNAMSIZ ({IFNAMSIZ - 1})"
        )
    if text == "":
        raise ExtensionError("Empty interface is likely to be undesired")
    return text


def format_interface(name: str) -> str | None:
    """print_iface: None when the mask is empty ('' or '+'), else the name."""
    if name in ("", "+"):
        return None
    return name


def ntop6(addr: ipaddress.IPv6Address) -> str:
    """glibc 2.36 inet_ntop(AF_INET6): like Python's, but with an IPv4 tail for
    ::ffff:a.b.c.d and for ::a.b.c.d when the 7th group is non-zero."""
    packed = addr.packed
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    if words[:5] == [0] * 5 and ((words[5] == 0 and words[6] != 0) or words[5] == 0xFFFF):
        v4 = ".".join(str(b) for b in packed[12:])
        return ("::ffff:" if words[5] == 0xFFFF else "::") + v4
    return str(ipaddress.IPv6Address(packed))


def format_address(a: Address, family: Family) -> str:
    """print_ip's text after -s/-d: addr/prefix, or addr/dotted-mask when not contiguous."""
    if family is Family.IPV4:
        plen = a.prefixlen
        return f"{a.addr}/{plen if plen is not None else a.mask}"
    plen = a.prefixlen
    return f"{ntop6(a.addr)}/{plen if plen is not None else ntop6(a.mask)}"


def address_printed(a: Address, negated: bool, family: Family) -> bool:
    """print_ip omits 'any': IPv4 when addr and mask are 0, IPv6 when the prefix is 0."""
    if negated:
        return True
    if family is Family.IPV4:
        return not (int(a.addr) == 0 and int(a.mask) == 0)
    return a.prefixlen != 0
