"""A tiny stand-in for the rule parser, to test group-B extensions on their own.

It reads iptables' ``extensions/*.t`` lines, finds the ``-j NAME`` / ``-m NAME``
part that belongs to the extension under test, feeds its options through the
Extension API (spec.parse → finalize → save) and returns the saved text, so the
tests can compare it with the text iptables-save prints. Other matches on the
line (``-m tcp --dport 42``) are skipped: their owners test them.
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    ParseContext,
    match_extension,
    target_extension,
)
from bpfilter.ir import Family, Negatable, Option

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
TESTS_DIR = CORPUS / "iptables-tests" / "extensions"


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    args: str
    expected: str  # text after "-A CHAIN " ("" for FAIL)
    result: str  # OK / FAIL / NOMATCH
    table: str
    chains: tuple[str, ...]
    families: tuple[Family, ...]


def load_cases(name: str) -> list[Case]:
    """All test lines of the ``lib{xt,ipt,ip6t}_<name>.t`` files."""
    out: list[Case] = []
    for prefix, fams in (
        ("libxt_", (Family.IPV4, Family.IPV6)),
        ("libipt_", (Family.IPV4,)),
        ("libip6t_", (Family.IPV6,)),
    ):
        path = TESTS_DIR / f"{prefix}{name}.t"
        if not path.exists():
            continue
        table, chains = "filter", ()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line or line[0] in "#@%":
                continue
            if line.startswith(":"):
                chains = tuple(line[1:].split(","))
                continue
            if line.startswith("*"):
                table = line[1:]
                continue
            fields = line.split(";")
            args, exp, res = fields[0], fields[1], fields[2]
            if len(fields) > 3 and fields[3] == "NFT":
                continue
            out.append(
                Case(path.name, n, args, args if exp == "=" else exp, res, table, chains, fams)
            )
    return out


def _protocol(tokens: list[str]) -> Negatable | None:
    for i, t in enumerate(tokens):
        if t in ("-p", "--protocol"):
            neg = i > 0 and tokens[i - 1] == "!"
            p = tokens[i + 1]
            num = int(p) if p.isdigit() else socket.getprotobyname(p)
            return Negatable(num, neg)
    return None


def _segment(tokens: list[str], flag: str, name: str) -> list[str] | None:
    """Tokens after ``flag name`` up to the next -m/-j (an owner's options)."""
    for i in range(len(tokens) - 1):
        if tokens[i] == flag and tokens[i + 1] == name:
            seg: list[str] = []
            for t in tokens[i + 2 :]:
                if t in ("-m", "-j", "--match", "--jump"):
                    break
                seg.append(t)
            return seg
    return None


def parse_options(ext: Extension, seg: list[str], ctx: ParseContext) -> list[Option]:
    """getopt-like: ``[!] --name [args]``; optional arguments as rateest has them."""
    opts: list[Option] = []
    i = 0
    while i < len(seg):
        neg = False
        if seg[i] == "!":
            neg = True
            i += 1
        tok = seg[i]
        if not tok.startswith("--"):
            raise ExtensionError(f"Bad argument `{tok}'")
        spec = ext.spec(tok[2:])
        if spec is None:
            raise ExtensionError(f"unknown option {tok}")
        i += 1
        if neg and not spec.invert:
            raise ExtensionError(f"option {tok} cannot be inverted")
        if getattr(spec, "optional_arg", False):
            nxt = seg[i] if i < len(seg) else None
            if nxt is None or nxt.startswith("-") or nxt.startswith("!"):
                args: list[str] = []
            else:
                args = [nxt]
                i += 1
            value = spec.parse(args, ctx) if spec.parse else True
        elif spec.takes_argument:
            if i + spec.nargs > len(seg):
                raise ExtensionError(f"option {tok} requires an argument")
            args = seg[i : i + spec.nargs]
            i += spec.nargs
            value = spec.parse(args, ctx)
        else:
            value = True
        opts.append(Option(spec.name, value, neg))
    return opts


def run_ir(
    kind: str, name: str, args: str, family: Family, table: str, chain: str
) -> tuple[Option, ...]:
    """Parse ``args``' part for extension ``name``: the finalized options (the IR)."""
    tokens = shlex.split(args)
    flag = "-j" if kind == "target" else "-m"
    seg = _segment(tokens, flag, name)
    assert seg is not None, f"{flag} {name} not in {args!r}"
    ext = (target_extension if kind == "target" else match_extension)(name, family)
    assert ext is not None, name
    ctx = ParseContext(family=family, table=table, chain=chain, protocol=_protocol(tokens))
    return ext.finalize(parse_options(ext, seg, ctx), ctx)


def run(kind: str, name: str, args: str, family: Family, table: str, chain: str) -> str:
    """Parse ``args``' part for extension ``name`` and return what save prints.

    The returned text starts with ``-j NAME`` / ``-m NAME``. Raises ExtensionError
    when the extension (or this harness' getopt) refuses the line.
    """
    tokens = shlex.split(args)
    flag = "-j" if kind == "target" else "-m"
    seg = _segment(tokens, flag, name)
    assert seg is not None, f"{flag} {name} not in {args!r}"
    ext = (target_extension if kind == "target" else match_extension)(name, family)
    assert ext is not None, name
    if family not in ext.families:
        raise ExtensionError(f"{name}: not available for this family")
    ctx = ParseContext(family=family, table=table, chain=chain, protocol=_protocol(tokens))
    opts = parse_options(ext, seg, ctx)
    final = ext.finalize(opts, ctx)
    text = ext.save(final, ctx)
    return f"{flag} {name}" + (f" {text}" if text else "")


def expected_part(kind: str, name: str, expected: str) -> str:
    """The ``-j NAME ...`` / ``-m NAME ...`` part of an expected save line."""
    tokens = shlex.split(expected, posix=False)
    flag = "-j" if kind == "target" else "-m"
    seg = _segment(tokens, flag, name)
    assert seg is not None, expected
    return " ".join([flag, name, *seg])
