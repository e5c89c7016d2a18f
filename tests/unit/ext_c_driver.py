"""A tiny rule driver for the group-C extension tests, independent of the full parser.

It understands just enough of an iptables rule (``-s/-d``, ``-p``, ``-m NAME``
with its ``[!] --option args``, ``-j``) to push match options through the
Extension API (spec lookup, typed parse, finalize, save) and rebuild the text
iptables-save prints. The real frontend has its own parser; this keeps the
extension tests meaningful on their own.
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import ExtensionError, ParseContext, match_extension
from bpfilter.ir import BUILTIN_CHAINS, Family, Negatable, Option

_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", 135: "mobility-header"}


def _proto_number(name: str) -> int:
    if name.isdigit():
        return int(name)
    if name in ("mh", "ipv6-mh", "mobility-header"):
        return 135
    if name == "icmpv6":
        return 58
    return socket.getprotobyname(name)


def _proto_name(num: int) -> str:
    if num in _PROTO_NAMES:
        return _PROTO_NAMES[num]
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.getprotobynumber.restype = ctypes.POINTER(ctypes.c_char_p)
        ent = libc.getprotobynumber(num)
        if ent:
            return ent[0].decode()
    except OSError:
        pass
    return str(num)


class MissingExtension(LookupError):
    """No extension registered under that name (not an input error)."""


@dataclass
class Parsed:
    text: str
    matches: list[tuple[str, tuple[Option, ...]]]


def run_rule(args: str, family: Family = Family.IPV4, table: str = "filter",
             chain: str = "INPUT") -> Parsed:
    """Parse ``args`` (one rule after ``-A CHAIN``) and return what save prints."""
    toks = shlex.split(args)
    head: list[str] = []
    protocol: Negatable | None = None
    blocks: list[tuple[str, list[tuple[str, list[str], bool]]]] = []
    tail: list[str] = []
    i = 0
    neg = False
    while i < len(toks):
        t = toks[i]
        if t == "!":
            neg = True
            i += 1
            continue
        if t in ("-p", "--protocol"):
            protocol = Negatable(_proto_number(toks[i + 1]), neg)
            head += (["!"] if neg else []) + ["-p", _proto_name(protocol.value)]
            i += 2
        elif t in ("-s", "-d", "-i", "-o"):
            head += (["!"] if neg else []) + [t, toks[i + 1]]
            i += 2
        elif t in ("-m", "--match"):
            blocks.append((toks[i + 1], []))
            i += 2
        elif t in ("-j", "-g"):
            tail = toks[i:]
            i = len(toks)
        elif t.startswith("--") and not blocks and protocol is not None:
            blocks.append((_proto_name(protocol.value), []))  # implicit -m PROTO
            continue
        elif t.startswith("--") and blocks:
            blocks[-1][1].append((t[2:], [], neg))
            i += 1
            neg = False
            continue
        else:
            if not blocks or not blocks[-1][1]:
                raise ExtensionError(f"unexpected token {t!r}")
            blocks[-1][1][-1][1].append(t)
            i += 1
            continue
        neg = False
    ctx = ParseContext(family=family, table=table, chain=chain, protocol=protocol)
    out = list(head)
    matches = []
    for name, opts in blocks:
        ext = match_extension(name, family)
        if ext is None:
            raise MissingExtension(name)
        parsed: list[Option] = []
        pending = list(opts)
        while pending:
            oname, oargs, oneg = pending.pop(0)
            spec = ext.spec(oname)
            if spec is None:
                # getopt_long accepts unambiguous prefixes.
                cands = {s.name for s in ext.options
                         for n in (s.name, *s.aliases) if n.startswith(oname)}
                if len(cands) != 1:
                    raise ExtensionError(f"unknown option --{oname}")
                spec = ext.spec(cands.pop())
            assert spec is not None
            if oneg and not spec.invert:
                raise ExtensionError(f"--{oname} cannot be inverted")
            if spec.takes_argument:
                need = spec.nargs
                if len(oargs) < need:
                    raise ExtensionError(f"option --{oname} requires an argument")
                extra = oargs[need:]
                oargs = oargs[:need]
                if extra:
                    raise ExtensionError(f"unexpected {extra}")
                assert spec.parse is not None
                value = spec.parse(oargs, ctx)
            else:
                if oargs:
                    raise ExtensionError(f"unexpected {oargs}")
                value = True
            if not spec.multi and any(p.name == spec.name for p in parsed):
                raise ExtensionError(f"--{oname} given twice")
            parsed.append(Option(spec.name, value, oneg))
        final = ext.finalize(parsed, ctx)
        hooks = [chain] if chain in BUILTIN_CHAINS.get(table, ()) else []
        ext.check_hooks(table, hooks, family)
        matches.append((name, final))
        saved = ext.save(final, ctx)
        out += ["-m", name] + ([saved] if saved else [])
    return Parsed(" ".join(out + tail), matches)
