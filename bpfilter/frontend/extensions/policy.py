"""``-m policy`` (xt_policy): the IPsec policy used to decapsulate / to encapsulate.

Values: ``dir`` "in" or "out"; ``pol`` "ipsec" or "none" (default ipsec);
``strict`` flag; then one ``element`` option per policy element (``--next``
separates them in the text, at most 4, and needs ``--strict``), each a
``PolicyElem`` whose fields are ``Negatable`` or None: ``reqid`` int,
``spi`` int, ``proto`` int (50 esp, 51 ah, 108 ipcomp), ``mode``
"transport"/"tunnel", ``tunnel_src``/``tunnel_dst`` ``HostMask``.
The kernel refuses ``--dir in`` from OUTPUT/POSTROUTING and ``--dir out``
from PREROUTING/INPUT.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import (
    FORWARD,
    INPUT,
    OUTPUT,
    POSTROUTING,
    PREROUTING,
    check_hooks_allowed,
    own_hooks,
)
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint
from bpfilter.frontend.netparse import parse_hostmask_plen, parse_protocol
from bpfilter.ir import Family, Negatable, Option

MAX_ELEM = 4
IPSEC_PROTOS = (50, 51, 108)
_ELEM_FIELDS = {"reqid": "reqid", "spi": "spi", "proto": "proto", "mode": "mode",
                "tunnel-src": "tunnel_src", "tunnel-dst": "tunnel_dst"}


@dataclass(frozen=True)
class PolicyElem:
    """One element of an IPsec policy; each test is ``Negatable`` or None (not tested)."""

    reqid: Negatable | None = None
    spi: Negatable | None = None
    proto: Negatable | None = None
    mode: Negatable | None = None
    tunnel_src: Negatable | None = None
    tunnel_dst: Negatable | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def _choice(opt: str, choices: tuple[str, ...], msg: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> str:
        if args[0] not in choices:
            raise ExtensionError(f'{msg} "{args[0]}"')
        return args[0]

    return parse


def _proto(args: Sequence[str], ctx: ParseContext) -> int:
    p = parse_protocol(args[0])
    if p not in IPSEC_PROTOS:
        raise ExtensionError("policy match: protocol must be ah/esp/ipcomp")
    return p


_PROTO_NAMES = {50: "esp", 51: "ah", 108: "ipcomp"}


@register
class PolicyMatch(Extension):
    """IPsec policy match."""

    name = "policy"
    kind = "match"
    options = (
        OptionSpec("dir", _choice("dir", ("in", "out"), "policy_match: invalid dir"),
                   invert=True),
        OptionSpec("pol", _choice("pol", ("none", "ipsec"), "policy match: invalid policy")),
        OptionSpec("strict"),
        OptionSpec("reqid", lambda a, c: parse_uint(a[0], UINT32_MAX, "policy", "reqid"),
                   invert=True, multi=True),
        OptionSpec("spi", lambda a, c: parse_uint(a[0], UINT32_MAX, "policy", "spi"),
                   invert=True, multi=True),
        OptionSpec("proto", _proto, invert=True, multi=True),
        OptionSpec("mode", _choice("mode", ("transport", "tunnel"),
                                   "policy match: invalid mode"), invert=True, multi=True),
        OptionSpec("tunnel-src", lambda a, c: parse_hostmask_plen(a[0], c.family, "policy"),
                   invert=True, multi=True),
        OptionSpec("tunnel-dst", lambda a, c: parse_hostmask_plen(a[0], c.family, "policy"),
                   invert=True, multi=True),
        OptionSpec("next", multi=True),
        # Canonical form only: what finalize produces (never typed by users).
        OptionSpec("element", multi=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        direction = pol = None
        strict = False
        elems = [PolicyElem()]
        for o in options:
            if o.name == "dir":
                direction = o.value
            elif o.name == "pol":
                pol = o.value
            elif o.name == "strict":
                strict = True
            elif o.name == "next":
                elems.append(PolicyElem())
                if len(elems) == MAX_ELEM + 1:
                    raise ExtensionError("policy match: maximum policy depth reached")
            elif o.name == "element":
                raise ExtensionError('policy: unknown option "--element"')
            else:
                attr = _ELEM_FIELDS[o.name]
                if getattr(elems[-1], attr) is not None:
                    raise ExtensionError(f"policy match: double --{o.name} option")
                elems[-1] = replace(elems[-1], **{attr: Negatable(o.value, o.negated)})
        if any(o.name == "next" for o in options) and not strict:
            raise ExtensionError('policy: option "--next" also requires "--strict".')
        if direction is None:
            raise ExtensionError("policy match: neither --dir in nor --dir out specified")
        if pol == "none":
            if strict:
                raise ExtensionError("policy match: policy none but --strict given")
            if len(elems) > 1:
                raise ExtensionError("policy match: policy none but policy given")
            elems = []
        for i, e in enumerate(elems):
            if strict and e.empty:
                raise ExtensionError(
                    f"policy match: empty policy element {i}. --strict is in effect, but at "
                    "least one of reqid, spi, tunnel-src, tunnel-dst, proto or mode is required."
                )
            # An absent --mode is transport (0) in the kernel struct, so it is refused too.
            mode = e.mode or Negatable("transport")
            if (e.tunnel_src or e.tunnel_dst) and (mode.value == "tunnel") == mode.negated:
                raise ExtensionError(
                    "policy match: --tunnel-src/--tunnel-dst is only valid in tunnel mode"
                )
        self._check(direction, own_hooks(ctx), ctx.family)
        out = [Option("dir", direction), Option("pol", pol or "ipsec")]
        if strict:
            out.append(Option("strict"))
        out += [Option("element", e) for e in elems]
        return tuple(out)

    @staticmethod
    def _check(direction: str, hooks: Iterable[str], family: Family) -> None:
        valid = ({PREROUTING, INPUT, FORWARD} if direction == "in"
                 else {FORWARD, OUTPUT, POSTROUTING})
        check_hooks_allowed(f"policy (--dir {direction})", "match", hooks, valid, family)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts: list[str] = []
        elems = [o.value for o in options if o.name == "element"]
        for o in options:
            if o.name in ("dir", "pol"):
                parts.append(f"--{o.name} {o.value}")
            elif o.name == "strict":
                parts.append("--strict")
        for i, e in enumerate(elems):
            if i:
                parts.append("--next")
            parts += _save_elem(e)
        return " ".join(parts)


def _save_elem(e: PolicyElem) -> list[str]:
    out = []
    for attr, name, fmt in (("reqid", "reqid", str), ("spi", "spi", lambda v: f"0x{v:x}"),
                            ("proto", "proto", lambda v: _PROTO_NAMES.get(v, str(v))),
                            ("mode", "mode", str), ("tunnel_dst", "tunnel-dst", str),
                            ("tunnel_src", "tunnel-src", str)):
        t = getattr(e, attr)
        if t is not None:
            out.append(("! " if t.negated else "") + f"--{name} {fmt(t.value)}")
    return out
