"""Where the kernel lets an extension run: tables, hooks and the rule's protocol.

The kernel refuses a rule at COMMIT (``xt_check_match`` / ``xt_check_target``
and some checkentry functions) when an extension is used in the wrong table,
reached from a hook it does not support, or without the ``-p`` it needs. We
must refuse the same rules, with the kernel log's wording.

Two moments check placement: ``finalize`` (the rule's own chain when it is
built in) and ``check_hooks`` at COMMIT (every built-in chain that reaches a
user chain). ``KernelPlaced`` does both from three class attributes; the
functions serve extensions whose checks depend on their options.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from bpfilter.frontend.extensions.base import Extension, ExtensionError, ParseContext
from bpfilter.frontend.extensions.options import exclusive, must_have
from bpfilter.ir import BUILTIN_CHAINS, Family, Option

# Netfilter hooks, named like the built-in chains (the kernel checks hooks, not chain names).
PREROUTING = "PREROUTING"
INPUT = "INPUT"
FORWARD = "FORWARD"
OUTPUT = "OUTPUT"
POSTROUTING = "POSTROUTING"
HOOK_ORDER = (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING)

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_SCTP = 132


def family_prefix(family: Family) -> str:
    """``ip`` / ``ip6``: how kernel messages name the table family."""
    return "ip6" if family is Family.IPV6 else "ip"


def own_hooks(ctx: ParseContext) -> tuple[str, ...]:
    """The rule's hook when it sits in a built-in chain, else () (checked at COMMIT)."""
    return (ctx.chain,) if ctx.chain in BUILTIN_CHAINS.get(ctx.table, ()) else ()


def check_hooks_allowed(name: str, kind: str, hooks: Iterable[str], allowed: Iterable[str],
                        family: Family) -> None:
    """Refuse when one of ``hooks`` is not ``allowed`` (the kernel's hook test).

    Wording as the kernel: matches are "only valid from", targets "only usable from".
    """
    hs, ok = set(hooks), set(allowed)
    bad = [h for h in HOOK_ORDER if h in hs and h not in ok]
    if bad:
        only = "/".join(h for h in HOOK_ORDER if h in ok)
        word = "valid" if kind == "match" else "usable"
        raise ExtensionError(
            f"{family_prefix(family)}_tables: {name} {kind}: used from hooks {'/'.join(bad)}, "
            f"but only {word} from {only}"
        )


def check_table(name: str, kind: str, table: str, allowed: Iterable[str],
                family: Family) -> None:
    """Refuse a table the extension is not for (``xt_match.table`` / ``xt_target.table``)."""
    ok = tuple(allowed)
    if table not in ok:
        raise ExtensionError(
            f"{family_prefix(family)}_tables: {name} {kind}: only valid in {'/'.join(ok)} "
            f"table, not {table}"
        )


def require_protocol(ctx: ParseContext, protocols: int | Iterable[int], what: str) -> None:
    """``.proto`` set: the rule's ``-p`` must be one of ``protocols``, not negated."""
    allowed = sorted({protocols} if isinstance(protocols, int) else set(protocols))
    p = ctx.protocol
    if p is None or p.negated or p.value not in allowed:
        only = "/".join(str(x) for x in allowed)
        raise ExtensionError(
            f"{family_prefix(ctx.family)}_tables: {what}: only valid for protocol {only}"
        )


def proto_number(ctx: ParseContext) -> int:
    """The rule's protocol number, ignoring '!' (what the entry's ip.proto holds)."""
    return 0 if ctx.protocol is None else int(ctx.protocol.value)


class KernelPlaced(Extension):
    """An extension with the kernel's table / hook / protocol restrictions.

    ``valid_tables``: tables it may be used in, in the order messages list them (None: any).
    ``valid_hooks``: built-in chains (netfilter hooks) it may be reached from (None: any).
    ``valid_protocols``: the rule's ``-p`` must be one of these, not negated (None: any).

    The default ``finalize`` runs xtables' generic option checks, ``complete``
    (override it for the extension's own x6_fcheck) and ``check_placement``.
    Subclasses that override ``finalize`` call ``check_placement`` themselves.
    """

    valid_tables: ClassVar[tuple[str, ...] | None] = None
    valid_hooks: ClassVar[frozenset[str] | None] = None
    valid_protocols: ClassVar[frozenset[int] | None] = None

    # --- what the parser calls -------------------------------------------------

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_generic(options)
        found = {o.name: o for o in options}
        out = self.complete(found, ctx)
        self.check_placement(ctx)
        return out

    def check_hooks(self, table: str, hooks: Iterable[str], family: Family = Family.IPV4) -> None:
        """Refuse a table, or a hook that reaches the rule, the kernel would refuse."""
        if self.valid_tables is not None:
            check_table(self.name, self.kind, table, self.valid_tables, family)
        if self.valid_hooks is not None:
            check_hooks_allowed(self.name, self.kind, hooks, self.valid_hooks, family)

    def check_placement(self, ctx: ParseContext) -> None:
        """Table and protocol always; hooks when the chain is built in."""
        if self.valid_tables is not None:
            check_table(self.name, self.kind, ctx.table, self.valid_tables, ctx.family)
        if self.valid_protocols is not None:
            require_protocol(ctx, self.valid_protocols, f"{self.name} {self.kind}")
        if self.valid_hooks is not None:
            check_hooks_allowed(self.name, self.kind, own_hooks(ctx), self.valid_hooks,
                                ctx.family)

    # --- for subclasses ----------------------------------------------------------

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        """Check the options as a whole and return them in canonical order."""
        return self.ordered(found.values())

    def ordered(self, options: Iterable[Option]) -> tuple[Option, ...]:
        """Options in declaration order (how iptables-save prints them)."""
        order = {spec.name: i for i, spec in enumerate(self.options)}
        return tuple(sorted(options, key=lambda o: order.get(o.name, len(order))))

    def check_generic(self, options: Sequence[Option]) -> None:
        """xtables_option_parse: non-multi options once, '!' only where allowed."""
        seen: set[str] = set()
        for opt in options:
            spec = self.spec(opt.name)
            if spec is None:
                raise ExtensionError(f'{self.name}: unknown option "--{opt.name}"')
            if opt.name in seen and not spec.multi:
                raise ExtensionError(
                    f'{self.name}: option "--{opt.name}" can only be used once.'
                )
            if opt.negated and not spec.invert:
                raise ExtensionError(f'{self.name}: option "--{opt.name}" cannot be inverted.')
            seen.add(opt.name)

    def must(self, found: dict[str, Option], name: str) -> Option:
        """XTOPT_MAND for this extension."""
        return must_have(found, name, self.name)

    def exclusive(self, found: dict[str, Option], a: str, b: str) -> None:
        """``--a`` and ``--b`` together are refused (an option's ``.excl``)."""
        exclusive(self.name, found, b, a)


__all__ = [
    "HOOK_ORDER",
    "KernelPlaced",
    "check_hooks_allowed",
    "check_table",
    "family_prefix",
    "own_hooks",
    "proto_number",
    "require_protocol",
]
