"""The contract every match (`-m NAME`) and target (`-j NAME`) extension follows.

Mirrors libxtables: an extension declares its options (``OptionSpec``), each
option's argument is parsed into a typed value, ``finalize`` checks the whole
set (like xtables' x6_fcheck) and fixes canonical order, and ``save`` prints
the text iptables-save prints after ``-m NAME`` / ``-j NAME``.

Extensions register themselves with ``@register`` in their module; the
frontend finds them through ``match_extension`` / ``target_extension``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from bpfilter.ir import Family, Match, Negatable, Option


class ExtensionError(ValueError):
    """Bad extension input; the frontend adds file, line and text."""


@dataclass(frozen=True)
class ParseContext:
    """What an extension may need to know about the rule it is parsed in."""

    family: Family
    table: str
    chain: str
    protocol: Negatable | None  # the rule's -p, Negatable[int] (0 = all)
    # The rule's finalized matches, given to targets only (kernel checks such as
    # TCPMSS's "needs a tcp match on SYN" look at the whole rule).
    matches: tuple[Match, ...] = ()


# parse(args, ctx) -> typed value. ``args`` has ``OptionSpec.nargs`` strings.
OptionParser = Callable[[Sequence[str], ParseContext], Any]


@dataclass(frozen=True)
class OptionSpec:
    """One `--option` of an extension.

    ``name`` is the canonical long name (without dashes) used as ``Option.name``;
    ``aliases`` are other spellings iptables accepts (e.g. "destination-port").
    ``parse`` is None for flags that take no argument (value True).
    """

    name: str
    parse: OptionParser | None = None
    invert: bool = False  # accepts a leading "!"
    aliases: tuple[str, ...] = ()
    nargs: int = 1
    multi: bool = False  # may be given more than once
    # The argument may be left out (libxt_rateest's ``--rateest-bps [rate]``): the
    # parser passes the next word unless there is none or it starts with '-' or '!',
    # and ``parse`` then gets an empty argument list.
    optional_arg: bool = False

    @property
    def takes_argument(self) -> bool:
        return self.parse is not None


@dataclass
class Extension:
    """Base class for match and target extensions.

    Subclasses set ``name``, ``kind``, ``options`` and override ``finalize``
    and ``save`` as needed.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["match", "target"]]
    families: ClassVar[frozenset[Family]] = frozenset({Family.IPV4, Family.IPV6})
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    # Extra names that load this extension (e.g. "NOTRACK" for the CT target).
    aliases: ClassVar[tuple[str, ...]] = ()
    _spec_by_name: dict[str, OptionSpec] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for spec in self.options:
            for n in (spec.name, *spec.aliases):
                self._spec_by_name[n] = spec

    def spec(self, long_name: str) -> OptionSpec | None:
        """The option spec for a full long option name (no dashes), or None."""
        return self._spec_by_name.get(long_name)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        """Check the options as a whole and return them in canonical order.

        Default: options in declaration order. Raise ExtensionError on bad
        combinations (missing mandatory option, conflicting options...).
        """
        order = {spec.name: i for i, spec in enumerate(self.options)}
        return tuple(sorted(options, key=lambda o: order.get(o.name, len(order))))

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        """Text iptables-save prints after `-m NAME ` / `-j NAME ` ('' if none)."""
        parts: list[str] = []
        for opt in options:
            spec = self._spec_by_name[opt.name]
            text = f"--{opt.name}"
            if spec.takes_argument:
                text += " " + self.format_value(opt)
            parts.append(("! " if opt.negated else "") + text)
        return " ".join(parts)

    def format_value(self, opt: Option) -> str:
        """How an option's value prints; override for typed values."""
        return str(opt.value)

    def check_hooks(self, table: str, hooks: Iterable[str], family: Family = Family.IPV4) -> None:
        """Kernel checkentry at COMMIT: table and the hooks the rule is reached from.

        ``hooks`` are the built-in chains whose walk reaches the rule's chain
        (empty for an unreachable user chain: the kernel checks nothing then).
        Raise ExtensionError (kernel-log wording) to refuse. Default: accept.
        """
        return None

    def check_rule_hooks(self, options: Sequence[Option], table: str, hooks: Iterable[str],
                         family: Family = Family.IPV4) -> None:
        """``check_hooks`` for kernel checks that depend on the rule's options.

        (e.g. addrtype ``--limit-iface-in`` is refused when OUTPUT reaches the
        rule's user chain.) Default: accept.
        """
        return None


_MATCHES: dict[str, list[Extension]] = {}
_TARGETS: dict[str, list[Extension]] = {}


def register(cls: type[Extension]) -> type[Extension]:
    """Class decorator: make an extension findable by its name and aliases.

    Several classes may share a name when their ``families`` differ (e.g. an
    IPv4 and an IPv6 flavour); lookups then pick by family.
    """
    instance = cls()
    registry = _MATCHES if cls.kind == "match" else _TARGETS
    for n in (cls.name, *cls.aliases):
        registry.setdefault(n, []).append(instance)
    return cls


def _pick(found: list[Extension] | None, family: Family | None) -> Extension | None:
    if not found:
        return None
    if family is None:
        return found[0]
    for ext in reversed(found):
        if family in ext.families:
            return ext
    return None


def match_extension(name: str, family: Family | None = None) -> Extension | None:
    """The match called ``name`` (for ``family`` when given), or None."""
    _load_all()
    return _pick(_MATCHES.get(name), family)


def target_extension(name: str, family: Family | None = None) -> Extension | None:
    """The target called ``name`` (for ``family`` when given), or None."""
    _load_all()
    return _pick(_TARGETS.get(name), family)


def all_extensions() -> list[Extension]:
    _load_all()
    every = [e for exts in (*_MATCHES.values(), *_TARGETS.values()) for e in exts]
    return list({id(e): e for e in every}.values())


_loaded = False
# Modules of this package that hold shared helpers, not extensions.
_HELPER_MODULES = frozenset({"base", "types", "options", "placement"})


def _load_all() -> None:
    """Import every module of this package so their @register runs."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    import bpfilter.frontend.extensions as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in _HELPER_MODULES and not info.name.startswith("_"):
            try:
                importlib.import_module(f"{pkg.__name__}.{info.name}")
            except Exception as exc:  # one broken module must not hide all others
                import warnings

                warnings.warn(f"extension module {info.name} failed to load: {exc!r}",
                              stacklevel=2)
