"""Generic-option values of iptables 1.8.9: addresses, masks, protocols, interfaces.

Mirrors libxtables (``xtables_ipparse_multiple``, ``xtables_ip6parse_multiple``,
``xtables_parse_protocol``, ``xtables_parse_interface``, ``XTTYPE_HOST`` /
``XTTYPE_HOSTMASK``), the C library's ``inet_pton`` / ``inet_aton`` /
``inet_ntop``, and the printing side of iptables-save (``print_ip``,
``print_proto``, ``print_iface``). Extensions take their address options from here.

Choice: host names are NOT resolved (a firewall load must not depend on DNS);
only literal addresses are accepted, a name is refused with iptables' own
"host/network `NAME' not found" message.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import cache, lru_cache

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.frontend.extensions.types import strtoul, try_number
from bpfilter.ir import Address, Family, IPAddress

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


def ipv4_numeric(text: str, is_mask: bool) -> int | None:
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


def ipv6_numeric(text: str) -> int | None:
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
    m = ipv4_numeric(text, True) if family is Family.IPV4 else ipv6_numeric(text)
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
        a = ipv4_numeric(host, False) if family is Family.IPV4 else ipv6_numeric(host)
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


def inet_ntop(addr: IPAddress) -> str:
    """glibc 2.36 inet_ntop: like ``ipaddress``, but with an IPv4 tail for
    ::ffff:a.b.c.d and for ::a.b.c.d when the 7th group is non-zero."""
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
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
    return f"{inet_ntop(a.addr)}/{plen if plen is not None else inet_ntop(a.mask)}"


def address_printed(a: Address, negated: bool, family: Family) -> bool:
    """print_ip omits 'any': IPv4 when addr and mask are 0, IPv6 when the prefix is 0."""
    if negated:
        return True
    if family is Family.IPV4:
        return not (int(a.addr) == 0 and int(a.mask) == 0)
    return a.prefixlen != 0


# --- addresses in extension options ----------------------------------------------


def inet_pton(text: str, family: Family) -> IPAddress | None:
    """inet_pton(3): strict numeric address of the family, or None."""
    if not text or "%" in text or "/" in text or text != text.strip():
        return None
    try:
        if family is Family.IPV4:
            return ipaddress.IPv4Address(text)
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def mask_to_cidr(mask: IPAddress) -> int | None:
    """xtables_ip(6)mask_to_cidr: prefix length of a contiguous mask, else None."""
    bits = mask.max_prefixlen
    m = int(mask)
    ones = bin(m).count("1")
    return ones if m == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1) else None


def prefix_mask(plen: int, family: Family) -> IPAddress:
    bits = family.bits
    m = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
    return ipaddress.IPv4Address(m) if family is Family.IPV4 else ipaddress.IPv6Address(m)


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton(3) as getaddrinfo(AI_NUMERICHOST) uses it: ``a``, ``a.b``, ``a.b.c``, ``a.b.c.d``.

    Each part is decimal, 0-octal or 0x-hex; the last part fills the remaining bytes.
    """
    parts = text.split(".")
    if not text or len(parts) > 4:
        return None
    nums: list[int] = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            nums.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]*", part):
            nums.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*", part):
            nums.append(int(part))
        else:
            return None
    value = 0
    for i, n in enumerate(nums[:-1]):
        if n > 0xFF:
            return None
        value |= n << (24 - 8 * i)
    last_bits = 32 - 8 * (len(nums) - 1)
    if nums[-1] >= 1 << last_bits:
        return None
    return ipaddress.IPv4Address(value | nums[-1])


def parse_host(text: str, family: Family) -> IPAddress | None:
    """XTTYPE_HOST without DNS: a numeric address as getaddrinfo(3) reads it."""
    if family is Family.IPV4:
        return inet_aton(text)
    return inet_pton(text, family)


def parse_hostmask(text: str, family: Family, ext: str, opt: str) -> tuple[IPAddress, IPAddress]:
    """XTTYPE_HOSTMASK as 1.8.9 has it: ``addr[/plen|/mask]`` → (address as given, mask).

    A prefix length is a C number (``0x18``, ``033``); a mask that is not
    contiguous becomes the full mask (1.8.9 quirk). Host names are not
    resolved (a firewall file must not depend on DNS).
    """
    host, sep, plen = text.partition("/")
    addr = parse_host(host, family)
    if addr is None:
        raise ExtensionError(f"getaddrinfo: Name or service not known ({host})")
    if not sep:
        return addr, prefix_mask(family.bits, family)
    n = try_number(plen, 0, family.bits)
    if n is not None:
        return addr, prefix_mask(n, family)
    mask = parse_host(plen, family)
    if mask is None:
        raise ExtensionError(
            f'{ext}: bad value for option "--{opt}", neither a valid network mask '
            f"nor valid CIDR (0-{family.bits})."
        )
    cidr = mask_to_cidr(mask)
    return addr, prefix_mask(family.bits if cidr is None else cidr, family)


def format_hostmask(addr: IPAddress, plen: int) -> str:
    """``addr`` then ``/plen`` unless the mask is full (xtables_ip*mask_to_numeric)."""
    text = inet_ntop(addr)
    return text if plen == addr.max_prefixlen else f"{text}/{plen}"


@dataclass(frozen=True)
class HostMask:
    """xtables' XTTYPE_HOSTMASK: an address as given (not masked) and a prefix length.

    The kernel compares under the mask; the address is kept as written
    because iptables-save prints it that way.
    """

    addr: IPAddress
    prefixlen: int

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.addr}/{self.prefixlen}", strict=False)

    def __str__(self) -> str:
        full = self.addr.max_prefixlen
        return str(self.addr) if self.prefixlen == full else f"{self.addr}/{self.prefixlen}"


def parse_hostmask_plen(text: str, family: Family, what: str) -> HostMask:
    """``addr[/plen|/mask]`` → HostMask: a strict numeric address (scope ids checked).

    The error wording of the extensions that use it (ipvs, srh, policy, conntrack)
    differs from ``parse_hostmask``'s; host names are not resolved.
    """
    addr_s, sep, mask_s = text.partition("/")
    cls = ipaddress.IPv6Address if family is Family.IPV6 else ipaddress.IPv4Address
    try:
        addr = cls(addr_s)
    except ValueError:
        raise ExtensionError(f"host/network `{addr_s}' not found") from None
    scope = getattr(addr, "scope_id", None)
    if scope:
        # getaddrinfo resolves the scope (an interface here) and drops it.
        if not scope.isdigit():
            try:
                socket.if_nametoindex(scope)
            except OSError:
                raise ExtensionError(f"host/network `{addr_s}' not found") from None
        addr = cls(addr_s.split("%", 1)[0])
    full = addr.max_prefixlen
    if not sep:
        return HostMask(addr, full)
    res = strtoul(mask_s)
    if res is not None and res[1] == "":
        if res[0] > full:
            raise ExtensionError(f'{what}: bad value for option, or out of range (0-{full}).')
        return HostMask(addr, res[0])
    try:
        mask = int(cls(mask_s))
    except ValueError:
        raise ExtensionError(f"{what}: invalid mask `{mask_s}' specified") from None
    ones = bin(mask).count("1")
    if mask != ((1 << full) - 1) ^ ((1 << (full - ones)) - 1):
        # xtables_ipmask_to_cidr gives -1 for a non-contiguous mask, which 1.8.9
        # turns into a full-length prefix.
        return HostMask(addr, full)
    return HostMask(addr, ones)
