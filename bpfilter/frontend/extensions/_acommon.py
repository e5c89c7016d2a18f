"""Shared helpers of the group-A extensions (conntrack, rate limits, marks, LOG...).

Small pieces libxtables gives several group-A extensions that ``types.py``
and the other groups' helpers do not: the case-insensitive *prefix* keyword
lookup (``strncasecmp(arg, NAME, strlen(arg))``, so ``est`` is ESTABLISHED),
option bookkeeping for ``finalize`` (mandatory / exclusive options), the
kernel's hook check for rules in user chains, and address text as
iptables-save prints it.

The module name starts with ``_`` so the extension loader skips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bpfilter.frontend.extensions._bcommon import inet_ntop, mask_to_cidr
from bpfilter.frontend.extensions.base import ExtensionError, ParseContext
from bpfilter.ir import BUILTIN_CHAINS, Family, IPAddress, Option

HOOK_ORDER = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def prefix_lookup(arg: str, names: Sequence[str]) -> str | None:
    """First of ``names`` that ``arg`` abbreviates, ignoring case (C strncasecmp idiom).

    ``arg`` must be non-empty; a longer ``arg`` than the name never matches.
    """
    if not arg:
        return None
    low = arg.lower()
    for name in names:
        if name.lower().startswith(low):
            return name
    return None


def parse_keyword_list(text: str, names: Sequence[str], what: str) -> frozenset[str]:
    """Comma list of abbreviated keywords (ctstate, ctstatus, addrtype types)."""
    out: set[str] = set()
    for tok in text.split(","):
        name = prefix_lookup(tok, names)
        if name is None:
            raise ExtensionError(f'Bad {what} "{tok}"')
        out.add(name)
    return frozenset(out)


def by_name(options: Sequence[Option]) -> dict[str, Option]:
    return {o.name: o for o in options}


def need_one(ext: str, found: dict[str, Option], *names: str) -> None:
    """At least one of ``names`` given (an x6_fcheck "you must specify")."""
    if not any(n in found for n in names):
        listed = " or ".join(f"--{n}" for n in names)
        raise ExtensionError(f"{ext}: you must specify {listed}")


def exclusive(ext: str, found: dict[str, Option], *names: str) -> None:
    """At most one of ``names`` (xtables' ``.excl``)."""
    given = [n for n in names if n in found]
    if len(given) > 1:
        raise ExtensionError(
            f'{ext}: option "--{given[1]}" cannot be used together with "--{given[0]}".'
        )


def check_hooks_allowed(ext: str, kind: str, hooks: Iterable[str], allowed: Iterable[str],
                        family: Family) -> None:
    """The kernel's xt_check_match/target hook test, with its wording."""
    hs, ok = set(hooks), set(allowed)
    bad = [h for h in HOOK_ORDER if h in hs and h not in ok]
    if bad:
        fam = "ip6" if family is Family.IPV6 else "ip"
        only = "/".join(h for h in HOOK_ORDER if h in ok)
        raise ExtensionError(
            f"{fam}_tables: {ext} {kind}: used from hooks {'/'.join(bad)}, "
            f"but only usable from {only}"
        )


def check_table(ext: str, kind: str, table: str, allowed: Iterable[str], family: Family) -> None:
    ok = tuple(allowed)
    if table not in ok:
        fam = "ip6" if family is Family.IPV6 else "ip"
        raise ExtensionError(
            f"{fam}_tables: {ext} {kind}: only valid in {'/'.join(ok)} table, not {table}"
        )


def own_hooks(ctx: ParseContext) -> tuple[str, ...]:
    """The rule's hook when it sits in a built-in chain, else () (checked at COMMIT)."""
    return (ctx.chain,) if ctx.chain in BUILTIN_CHAINS.get(ctx.table, ()) else ()


def require_tcp(ctx: ParseContext, what: str) -> None:
    """Kernel ``.proto = IPPROTO_TCP``: the rule needs ``-p tcp`` (not negated)."""
    p = ctx.protocol
    if p is None or p.negated or p.value != 6:
        fam = "ip6" if ctx.family is Family.IPV6 else "ip"
        raise ExtensionError(f"{fam}_tables: {what}: only valid for protocol 6")


def format_hostmask(addr: IPAddress, plen: int) -> str:
    """``addr`` then ``/plen`` unless the mask is full (xtables_ip*mask_to_numeric)."""
    text = inet_ntop(addr)
    return text if plen == addr.max_prefixlen else f"{text}/{plen}"


__all__ = [
    "by_name",
    "check_hooks_allowed",
    "check_table",
    "exclusive",
    "format_hostmask",
    "mask_to_cidr",
    "need_one",
    "own_hooks",
    "parse_keyword_list",
    "prefix_lookup",
    "require_tcp",
]
