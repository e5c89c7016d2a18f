"""Option bookkeeping shared by extensions: xtables' checks on the set of options.

``finalize`` implementations see the options a rule gave; these helpers
reproduce libxtables' mandatory / exclusive checks (``XTOPT_MAND``, ``.excl``,
x6_fcheck's "you must specify") and the case-insensitive keyword prefixes
several extensions accept, with iptables' messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.ir import Option


def by_name(options: Sequence[Option]) -> dict[str, Option]:
    """Options keyed by name (the last one wins, like repeated xtables options)."""
    return {o.name: o for o in options}


def must_have(found: dict[str, Option], name: str, ext: str) -> Option:
    """xtables' XTOPT_MAND: the option must be there."""
    opt = found.get(name)
    if opt is None:
        raise ExtensionError(f'{ext}: option "--{name}" must be specified')
    return opt


def need_one(ext: str, found: dict[str, Option], *names: str) -> None:
    """At least one of ``names`` given (an x6_fcheck "you must specify")."""
    if not any(n in found for n in names):
        listed = " or ".join(f"--{n}" for n in names)
        raise ExtensionError(f"{ext}: you must specify {listed}")


def exclusive(ext: str, found: dict[str, Option], *names: str) -> None:
    """At most one of ``names`` (xtables' ``.excl``): the later one in ``names`` is named first."""
    given = [n for n in names if n in found]
    if len(given) > 1:
        raise ExtensionError(
            f'{ext}: option "--{given[1]}" cannot be used together with "--{given[0]}".'
        )


def without_default(options: Sequence[Option], name: str, default: object) -> list[Option]:
    """Drop a non-negated ``--name default``: the kernel struct holds it as if not given,
    so iptables-save does not print it (a negated one matches nothing and stays)."""
    return [o for o in options if not (o.name == name and o.value == default and not o.negated)]


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


__all__ = [
    "by_name",
    "exclusive",
    "must_have",
    "need_one",
    "parse_keyword_list",
    "prefix_lookup",
    "without_default",
]
