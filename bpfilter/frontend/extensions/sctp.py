"""``-m sctp``: SCTP ports and chunk types (xt_sctp), bound to ``-p sctp``.

Values: ``sport``/``dport`` are ``PortRange``; ``chunk-types`` is a
``SctpChunks`` (match kind, set of chunk type numbers, per-type flag tests).
Chunk flags are kept only where the kernel can use them: libxt_sctp files
flag tests under the chunk's position in its name table, which equals the
chunk type for DATA, ABORT and SHUTDOWN_COMPLETE but not for I_DATA, so
``I_DATA:I`` tests nothing (and 1.8.9 prints it as ``I_DATA``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import IPPROTO_SCTP, require_protocol
from bpfilter.frontend.extensions.types import PortRange, format_port_range, parse_port_range
from bpfilter.ir import Option

# (name, chunk type, valid flag letters from bit 7 down to bit 0), in libxt_sctp's order.
CHUNKS: tuple[tuple[str, int, str], ...] = (
    ("DATA", 0, "----IUBE"),
    ("INIT", 1, "--------"),
    ("INIT_ACK", 2, "--------"),
    ("SACK", 3, "--------"),
    ("HEARTBEAT", 4, "--------"),
    ("HEARTBEAT_ACK", 5, "--------"),
    ("ABORT", 6, "-------T"),
    ("SHUTDOWN", 7, "--------"),
    ("SHUTDOWN_ACK", 8, "--------"),
    ("ERROR", 9, "--------"),
    ("COOKIE_ECHO", 10, "--------"),
    ("COOKIE_ACK", 11, "--------"),
    ("ECN_ECNE", 12, "--------"),
    ("ECN_CWR", 13, "--------"),
    ("SHUTDOWN_COMPLETE", 14, "-------T"),
    ("I_DATA", 64, "----IUBE"),
    ("ASCONF", 193, "--------"),
    ("ASCONF_ACK", 128, "--------"),
    ("FORWARD_TSN", 192, "--------"),
    ("RE_CONFIG", 130, "--------"),
    ("PAD", 132, "--------"),
    ("I_FORWARD_TSN", 194, "--------"),
)
_BY_NAME = {n: (i, t, f) for i, (n, t, f) in enumerate(CHUNKS)}
_NAME_OF = {t: n for n, t, _ in CHUNKS}
_VALID_FLAGS = {t: f for _, t, f in CHUNKS}
ALL_CHUNKS = frozenset(range(256))


@dataclass(frozen=True)
class SctpChunks:
    """``--chunk-types MATCH LIST``: ``match`` is "any", "all" or "only".

    ``flags`` holds ``(chunk type, flag bits, flag mask)`` per chunk with a flag test.
    """

    match: str
    types: frozenset[int]
    flags: tuple[tuple[int, int, int], ...] = ()


def _parse_chunks(args: Sequence[str], ctx: ParseContext) -> SctpChunks:
    kind, chunks = args[0], args[1]
    if chunks.startswith(("-", "!")):
        raise ExtensionError("--chunk-types requires two args")
    if kind.lower() not in ("any", "all", "only"):
        raise ExtensionError('Match type has to be one of "ALL", "ANY" or "ONLY"')
    if chunks.upper() == "ALL":
        return SctpChunks(kind.lower(), ALL_CHUNKS)
    if chunks.upper() == "NONE":
        return SctpChunks(kind.lower(), frozenset())
    types: set[int] = set()
    flags: dict[int, list[int]] = {}
    for tok in (t for t in chunks.split(",") if t):
        name, _, letters = tok.partition(":")
        entry = _BY_NAME.get(name.upper())
        if entry is None:
            raise ExtensionError(f"Unknown sctp chunk `{name}'")
        index, ctype, valid = entry
        types.add(ctype)
        for c in letters:
            pos = valid.find(c.upper())
            if pos < 0:
                raise ExtensionError(f"Invalid flags for chunk type {index}")
            bit = 7 - pos
            # libxt_sctp keys flag tests by table index; only where it equals the type
            # does the kernel ever apply them.
            if index != ctype:
                continue
            fl = flags.setdefault(ctype, [0, 0])
            fl[1] |= 1 << bit
            if c.isupper():
                fl[0] |= 1 << bit
    return SctpChunks(
        kind.lower(),
        frozenset(types),
        tuple((t, f, m) for t, (f, m) in sorted(flags.items())),
    )


def _format_chunks(v: SctpChunks) -> str:
    if not v.types:
        return f"{v.match} NONE"
    if v.types == ALL_CHUNKS:
        return f"{v.match} ALL"
    flags = {t: (f, m) for t, f, m in v.flags}
    out = []
    for t in sorted(v.types):
        text = _NAME_OF.get(t, "")
        if t in flags:
            f, m = flags[t]
            valid = _VALID_FLAGS[t]
            text += ":" + "".join(
                valid[7 - i] if f & (1 << i) else valid[7 - i].lower()
                for i in range(7, -1, -1)
                if m & (1 << i)
            )
        out.append(text)
    return f"{v.match} " + ",".join(out)


def _ports(args: Sequence[str], ctx: ParseContext) -> PortRange:
    return parse_port_range(args[0], "sctp")


@register
class SctpMatch(Extension):
    """SCTP header match; the kernel refuses it without ``-p sctp``."""

    name = "sctp"
    kind = "match"
    options = (
        OptionSpec("sport", _ports, invert=True, aliases=("source-port",)),
        OptionSpec("dport", _ports, invert=True, aliases=("destination-port",)),
        OptionSpec("chunk-types", _parse_chunks, invert=True, nargs=2),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        require_protocol(ctx, IPPROTO_SCTP, "sctp match")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        if isinstance(opt.value, SctpChunks):
            return _format_chunks(opt.value)
        return format_port_range(opt.value)
