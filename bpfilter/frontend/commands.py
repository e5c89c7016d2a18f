"""One iptables command line (argv) → a Command, as iptables 1.8.9's do_parse does.

Covers getopt_long scanning with options growing as extensions load, ``!``
placement, the 1.8.9 quirk that ``-s -d -p -i -o -j`` read ``argv[optind-1]``
(so an attached ``-ptcp`` is taken whole), implicit protocol matches
(``-p tcp --dport 22`` loads ``tcp``), extension option parsing and final
checks, the command/option compatibility table, and address expansion
(``-s a,b -d c,d`` gives one rule per pair, source-major).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    match_extension,
    target_extension,
)
from bpfilter.frontend.extensions.types import try_number
from bpfilter.frontend.getopt import (
    MISSING,
    NO_ARGUMENT,
    NON_OPTION,
    OPTIONAL_ARGUMENT,
    REQUIRED_ARGUMENT,
    UNKNOWN,
    GetOpt,
    LongOpt,
    LongTable,
    parse_optstring,
)
from bpfilter.frontend.netparse import (
    parse_addresses,
    parse_interface,
    parse_protocol,
    proto_to_name,
)
from bpfilter.ir import (
    Address,
    Counters,
    Family,
    Location,
    Match,
    Negatable,
    Option,
    Rule,
    Target,
)

OPTSTRING = "-:A:C:D:R:I:L::S::M:F::Z::N:X::E:P:Vh::o:p:s:d:j:i:fbvw::W::nt:m:xc:g:46"
SHORTS = parse_optstring(OPTSTRING)
XT_EXTENSION_MAXNAMELEN = 29

_R, _O = REQUIRED_ARGUMENT, OPTIONAL_ARGUMENT
ORIGINAL_OPTS: LongTable = LongTable.build(tuple(LongOpt(n, a, v) for n, a, v in (
    ("append", _R, "A"), ("delete", _R, "D"), ("check", _R, "C"), ("insert", _R, "I"),
    ("replace", _R, "R"), ("list", _O, "L"), ("list-rules", _O, "S"), ("flush", _O, "F"),
    ("zero", _O, "Z"), ("new-chain", _R, "N"), ("delete-chain", _O, "X"),
    ("rename-chain", _R, "E"), ("policy", _R, "P"), ("source", _R, "s"),
    ("destination", _R, "d"), ("src", _R, "s"), ("dst", _R, "d"), ("protocol", _R, "p"),
    ("in-interface", _R, "i"), ("jump", _R, "j"), ("table", _R, "t"), ("match", _R, "m"),
    ("numeric", NO_ARGUMENT, "n"), ("out-interface", _R, "o"), ("verbose", NO_ARGUMENT, "v"),
    ("wait", _O, "w"), ("wait-interval", _O, "W"), ("exact", NO_ARGUMENT, "x"),
    ("fragments", NO_ARGUMENT, "f"), ("version", NO_ARGUMENT, "V"), ("help", _O, "h"),
    ("line-numbers", NO_ARGUMENT, "0"), ("modprobe", _R, "M"), ("set-counters", _R, "c"),
    ("goto", _R, "g"), ("ipv4", NO_ARGUMENT, "4"), ("ipv6", NO_ARGUMENT, "6"),
)))

# Generic options that accept '!' (inverse_for_options).
INVERTIBLE = frozenset("sdpiof")
# xshared.c commands_v_options: options each command refuses ('x').
_OPT_COLS = "nsdpjvxio0cf"
_ILLEGAL = {
    "I": "x     x  x  ", "D": "x     x  xx ", "Dn": "xxxxx xxxxxx", "R": "x     x  x  ",
    "A": "x     x  x  ", "L": " xxxx  xx xx", "F": "xxxxx xxxxxx", "Z": "xxxxx xxxxxx",
    "N": "xxxxx xxxxxx", "X": "xxxxx xxxxxx", "P": "xxxxx xxxx x", "E": "xxxxx xxxxxx",
    "S": "xxxxx xxxx x", "Zn": "xxxxx xxxxxx", "C": "x     x  xx ",
}
_ILLEGAL_SETS = {cmd: frozenset(letter for letter, x in zip(_OPT_COLS, row, strict=False)
                                if x == "x") for cmd, row in _ILLEGAL.items()}
COMMANDS = frozenset("ACDRILSFZNXEP")
RULE_COMMANDS = frozenset("ACDRI")


@dataclass
class RuleSpec:
    """What do_parse collected for one rule before address expansion."""

    src: str | None = None
    dst: str | None = None
    inv: set[str] = field(default_factory=set)
    in_iface: str | None = None
    out_iface: str | None = None
    protocol: int | None = None
    fragment: bool = False
    matches: list[Match] = field(default_factory=list)
    target: Target | None = None
    counters: Counters | None = None


@dataclass
class Command:
    """A parsed command: op is the command letter (A, I, D, R, C, N, X, F, Z, P, E, L, S)."""

    op: str
    chain: str | None = None
    rulenum: int = 0
    rules: list[Rule] = field(default_factory=list)
    policy: str | None = None
    newname: str | None = None
    location: Location | None = None


@dataclass
class _Loaded:
    """An extension instance loaded on this line (xtables_rule_match / target)."""

    ext: Extension
    options: list[Option] = field(default_factory=list)
    completed: bool = False
    longopts: tuple[LongOpt, ...] = ()


_TEMPLATES: dict[tuple[int, int], tuple[LongOpt, ...]] = {}
_TABLES: dict[tuple[int, ...], LongTable] = {}


def _ext_longopts(ext: Extension, index: int) -> tuple[LongOpt, ...]:
    """The extension's options as getopt entries whose val routes to the extension
    loaded ``index``-th on the line (cached: lines load the same few extensions)."""
    key = (id(ext), index)
    found = _TEMPLATES.get(key)
    if found is None:
        # An optional argument (libxt_rateest) is no argument for getopt: the next
        # word is taken by _ext_option when it does not start with '-' or '!'.
        found = tuple(
            LongOpt(n, REQUIRED_ARGUMENT if spec.takes_argument
                    and not spec.optional_arg else NO_ARGUMENT,
                    (index, spec))
            for spec in ext.options for n in (spec.name, *spec.aliases))
        _TEMPLATES[key] = found
    return found


def _table_for(loaded: list[_Loaded]) -> LongTable:
    """Original options, then the newest extension's first (xtables_merge_options)."""
    key = tuple(id(e.ext) for e in loaded)
    table = _TABLES.get(key)
    if table is None:
        table = LongTable.build([lo for e in reversed(loaded) for lo in e.longopts],
                                ORIGINAL_OPTS)
        _TABLES[key] = table
    return table


def _err(msg: str) -> ExtensionError:
    return ExtensionError(msg)


def find_match(name: str, family: Family) -> Extension | None:
    """xtables_find_match: icmpv6 / ipv6-icmp are the icmp6 match."""
    if name in ("icmpv6", "ipv6-icmp"):
        name = "icmp6"
    return match_extension(name, family)


def parse_rulenumber(text: str) -> int:
    v = try_number(text, 1, 0x7FFFFFFF)
    if v is None:
        raise _err(f"Invalid rule number `{text}'")
    return v


@lru_cache(maxsize=1024)
def check_target_name(name: str) -> str:
    """xt_parse_target."""
    if not name:
        raise _err("Invalid target name (too short)")
    if len(name.encode()) >= XT_EXTENSION_MAXNAMELEN:
        raise _err(f"Invalid target name `{name}' ({XT_EXTENSION_MAXNAMELEN - 1} chars max)")
    if any(c.isspace() for c in name):
        raise _err(f"Invalid target name `{name}'")
    return name


def check_chain_name(name: str, family: Family) -> None:
    """parse_chain for -N."""
    if len(name.encode()) >= XT_EXTENSION_MAXNAMELEN:
        raise _err(f"chain name `{name}' too long (must be under "
                   f"{XT_EXTENSION_MAXNAMELEN} chars)")
    if name[:1] in ("-", "!"):
        raise _err(f"chain name not allowed to start with `{name[0]}'")
    if target_extension(name, family) is not None:
        raise _err("chain name may not clash with target name")
    if any(c.isspace() for c in name):
        raise _err(f"Invalid chain name `{name}'")


@lru_cache(maxsize=256)
def _protocol(text: str) -> tuple[int, str | None]:
    """-p's number and the name that loads its implicit match (lower-cased ``text``)."""
    num = try_number(text, 0, 255)
    return parse_protocol(text), proto_to_name(num) if num is not None else text


def _has_arg(g: GetOpt) -> bool:
    """xs_has_arg: a following word that is not an option or '!'."""
    return g.optind < len(g.argv) and g.argv[g.optind][:1] not in ("-", "!")


def parse_command(
    argv: list[str],
    family: Family,
    table: str,
    chain_exists: Callable[[str], bool],
    location: Location | None = None,
) -> Command | None:
    """Parse one command line (argv without program name / -t). None: line ignored.

    Raises ExtensionError with iptables' message for anything do_parse refuses.
    """
    g = GetOpt(argv, SHORTS)
    invert = False
    cmd: str | None = None
    chain: str | None = None
    rulenum = 0
    policy: str | None = None
    newname: str | None = None
    opts: set[str] = set()
    spec = RuleSpec()
    matches: list[_Loaded] = []
    target: _Loaded | None = None
    jumpto: str | None = None
    goto = False
    proto_name: str | None = None
    proto_used = False
    early = False
    longopts: LongTable = ORIGINAL_OPTS
    entries: list[_Loaded] = []  # in load order; getopt vals carry the index

    def relist() -> LongTable:
        return _table_for(entries)

    def load(ext: Extension) -> _Loaded:
        entry = _Loaded(ext, longopts=_ext_longopts(ext, len(entries)))
        entries.append(entry)
        return entry

    ctx_cache: list[tuple[tuple[object, ...], ParseContext]] = []

    def ctx() -> ParseContext:
        # Built once per (protocol, '!', chain) seen: most lines ask several times.
        key = (spec.protocol, "p" in spec.inv, chain)
        if ctx_cache and ctx_cache[0][0] == key:
            return ctx_cache[0][1]
        proto = None
        if spec.protocol is not None:
            proto = _negatable(spec.protocol, "p" in spec.inv)
        made = ParseContext(family, table, chain or "", proto)
        ctx_cache[:] = [(key, made)]
        return made

    def set_option(letter: str) -> None:
        if letter in opts:
            raise _err(f"multiple -{letter} flags not allowed")
        opts.add(letter)
        if invert:
            if letter not in INVERTIBLE:
                raise _err(f"cannot have ! before -{letter}")
            spec.inv.add(letter)

    def add_command(c: str) -> None:
        nonlocal cmd
        if invert:
            raise _err("unexpected ! flag before --" + _CMD_LONG[c])
        if cmd is not None:
            raise _err(f"Cannot use -{c} with -{cmd}")
        cmd = c

    def prev() -> str:
        return argv[g.optind - 1]

    while True:
        c = g.next(longopts)
        if c is None:
            break
        optarg = g.optarg
        if c == NON_OPTION:
            assert optarg is not None
            if optarg == "!":
                if invert:
                    raise _err("multiple consecutive ! not allowed")
                invert = True
                continue
            raise _err(f"Bad argument `{optarg}'")
        if isinstance(c, tuple):
            eid, ospec = c
            entry = entries[eid]
            if not entry.completed:
                _ext_option(entry, ospec, optarg, invert, g, ctx())
                invert = False
                continue
            c = UNKNOWN
        if c in (UNKNOWN, MISSING):
            if proto_name is not None and not proto_used:
                m = find_match(proto_name, family)
                if m is not None:
                    proto_used = True
                    entry = load(m)
                    for old in matches:
                        if old.ext is m:
                            old.completed = True
                    matches.append(entry)
                    longopts = relist()
                    g.optind -= 1
                    g.optarg = None
                    continue
            if c == MISSING:
                raise _err(f'option "{prev()}" requires an argument')
            raise _err(f'unknown option "{prev()}"')
        assert isinstance(c, str)
        if c in COMMANDS:
            add_command(c)
            if c in "AC":
                chain = optarg
            elif c in "DZ":
                if c == "Z":
                    chain = optarg or (argv[_bump(g)] if _has_arg(g) else None)
                else:
                    chain = optarg
                if _has_arg(g):
                    rulenum = parse_rulenumber(argv[_bump(g)])
                    cmd = c + "n"
            elif c == "R":
                chain = optarg
                if not _has_arg(g):
                    raise _err("-R requires a rule number")
                rulenum = parse_rulenumber(argv[_bump(g)])
            elif c == "I":
                chain = optarg
                rulenum = parse_rulenumber(argv[_bump(g)]) if _has_arg(g) else 1
            elif c in "LS":
                chain = optarg or (argv[_bump(g)] if _has_arg(g) else None)
                if _has_arg(g):
                    rulenum = parse_rulenumber(argv[_bump(g)])
            elif c in "FX":
                chain = optarg or (argv[_bump(g)] if _has_arg(g) else None)
            elif c == "N":
                assert optarg is not None
                check_chain_name(optarg, family)
                chain = optarg
            elif c == "E":
                chain = optarg
                if not _has_arg(g):
                    raise _err("-E requires old-chain-name and new-chain-name")
                newname = argv[_bump(g)]
            elif c == "P":
                chain = optarg
                if not _has_arg(g):
                    raise _err("-P requires a chain and a policy")
                policy = argv[_bump(g)]
        elif c == "p":
            set_option("p")
            spec.protocol, proto_name = _protocol(prev().lower())
            if spec.protocol == 0 and "p" in spec.inv:
                raise _err("rule would never match protocol")
        elif c in "sd":
            set_option(c)
            if c == "s":
                spec.src = prev()
            else:
                spec.dst = prev()
        elif c in "io":
            set_option(c)
            name = parse_interface(prev())
            if c == "i":
                spec.in_iface = name
            else:
                spec.out_iface = name
        elif c == "f":
            if family is Family.IPV6:
                raise _err("`-f' is not supported in IPv6, use -m frag instead")
            set_option("f")
            spec.fragment = True
        elif c == "j":
            set_option("j")
            jumpto = check_target_name(prev())
            t = target_extension(jumpto, family)
            if t is not None:
                target = load(t)
                longopts = relist()
        elif c == "g":
            set_option("j")
            assert optarg is not None
            jumpto = check_target_name(optarg)
            goto = True
        elif c == "m":
            if invert:
                raise _err("unexpected ! flag before --match")
            assert optarg is not None
            m = find_match(optarg, family)
            if m is None:
                raise _err(f"Couldn't load match `{optarg}':No such file or directory")
            for old in matches:
                if old.ext is m:
                    old.completed = True
            matches.append(load(m))
            longopts = relist()
        elif c == "c":
            set_option("c")
            assert optarg is not None
            pcnt = optarg
            comma = pcnt.find(",", 1)
            bcnt = pcnt[comma + 1:] if comma >= 0 else None
            if bcnt is None and _has_arg(g):
                bcnt = argv[_bump(g)]
            if bcnt is None:
                raise _err("-c requires packet and byte counter")
            p = _scan_u64(pcnt)
            if p is None:
                raise _err("-c packet counter not numeric")
            b = _scan_u64(bcnt)
            if b is None:
                raise _err("-c byte counter not numeric")
            spec.counters = Counters(p, b)
        elif c == "t":
            if invert:
                raise _err("unexpected ! flag before --table")
            raise _err("The -t option cannot be used in iptables-restore.")
        elif c in "wW":
            raise _err(f"You cannot use `-{c}' from iptables-restore")
        elif c in "nx0":
            set_option(c)
        elif c == "v":
            if invert:
                raise _err("cannot have ! before -v")
            opts.add("v")
        elif c in "46":
            if (c == "4") == (family is Family.IPV6):
                # 1.8.9: do_parse returns at the other family's flag; the command
                # collected so far still runs, without the final checks and with no
                # address list parsed, so rule commands add/check nothing.
                if cmd is None:
                    return None
                early = True
                break
        elif c in "hV":
            return None
        elif c == "M":
            pass
        elif c == "b":
            raise _err(f"unknown option \"{prev()}\"")
        invert = False

    if table == "nat" and (policy == "DROP" or jumpto == "DROP"):
        raise _err('\nThe "nat" table is not intended for filtering, '
                   "the use of DROP is therefore inhibited.\n")
    if early and cmd[0] in RULE_COMMANDS and cmd != "Dn":
        if jumpto is not None and target is None and not chain_exists(jumpto) and not goto:
            raise _err(f"Couldn't load target `{jumpto}':No such file or directory\n")
        if op_is_noop_after_early(cmd, family, spec):
            return None
    context = ctx()
    final_matches: list[Match] = []
    for entry in matches:
        options = tuple(entry.options)
        final_matches.append(Match(entry.ext.name, entry.ext.finalize(options, context)))
    tgt: Target | None = None
    if target is not None:
        if target.ext.name == "standard":
            tgt = _verdict(jumpto or "")
        else:
            tctx = replace(context, matches=tuple(final_matches))
            tgt = Target(target.ext.name, target.ext.finalize(tuple(target.options), tctx))
    if g.optind < len(argv) and not early:
        raise _err("unknown arguments found on commandline")
    if cmd is None:
        raise _err("no command specified")
    if invert and not early:
        raise _err("nothing appropriate following !")
    if (spec.src and "," in spec.src or spec.dst and "," in spec.dst) and \
            spec.inv & {"s", "d"}:
        raise _err("! not allowed with multiple source or destination IP addresses")
    bad = opts & _ILLEGAL_SETS.get(cmd, frozenset()) if not early else ()
    if bad:
        letter = next(c for c in _OPT_COLS if c in bad)
        raise _err(f"Illegal option `-{letter}' with this command")
    if chain is not None and len(chain.encode()) >= XT_EXTENSION_MAXNAMELEN:
        raise _err(f"chain name `{chain}' too long (must be under "
                   f"{XT_EXTENSION_MAXNAMELEN} chars)")
    op = cmd[0]
    if op in RULE_COMMANDS and cmd not in ("Dn",):
        assert chain is not None
        if chain in ("PREROUTING", "INPUT") and "o" in opts:
            raise _err(f"Can't use -o with {chain}\n")
        if chain in ("POSTROUTING", "OUTPUT") and "i" in opts:
            raise _err(f"Can't use -i with {chain}\n")
        if jumpto is not None and tgt is None:
            if chain_exists(jumpto):
                tgt = Target(jumpto, (), goto)
            elif goto:
                raise _err(f"goto '{jumpto}' is not a chain\n")
            else:
                raise _err(f"Couldn't load target `{jumpto}':No such file or directory\n")
        rules = _expand(spec, final_matches, tgt, family, location)
        if op == "R" and len(rules) != 1:
            raise _err("Replacement rule does not specify a unique address")
        return Command(op, chain, rulenum, rules, location=location)
    return Command(op, chain, rulenum, policy=policy, newname=newname, location=location)


_CMD_LONG = {"A": "append", "C": "check", "D": "delete", "R": "replace", "I": "insert",
             "L": "list", "S": "list-rules", "F": "flush", "Z": "zero", "N": "new-chain",
             "X": "delete-chain", "E": "rename-chain", "P": "policy"}


def op_is_noop_after_early(cmd: str, family: Family, spec: RuleSpec) -> bool:
    """After an early return at -4/-6 no address list exists: 1.8.9 adds nothing."""
    return True


def _bump(g: GetOpt) -> int:
    g.optind += 1
    return g.optind - 1


def _scan_u64(text: str) -> int | None:
    """sscanf("%llu"): leading blanks, optional sign, digits (rest ignored)."""
    s = text.lstrip()
    neg = s[:1] == "-"
    if s[:1] in "+-":
        s = s[1:]
    n = 0
    while n < len(s) and s[n].isdigit():
        n += 1
    if n == 0:
        return None
    v = int(s[:n]) & 0xFFFFFFFFFFFFFFFF
    return (-v) & 0xFFFFFFFFFFFFFFFF if neg else v


def _ext_option(entry: _Loaded, ospec: OptionSpec, optarg: str | None, invert: bool,
                g: GetOpt, ctx: ParseContext) -> None:
    """xtables_option_parse for one extension option."""
    ext = entry.ext
    if invert and not ospec.invert:
        raise _err(f'{ext.name}: option "--{ospec.name}" cannot be inverted.')
    if not ospec.multi and any(o.name == ospec.name for o in entry.options):
        raise _err(f'{ext.name}: option "--{ospec.name}" can only be used once.')
    value: object = True
    if ospec.optional_arg and ospec.parse is not None:
        # libxt_rateest takes the next word unless it starts with '-' or '!'.
        opt_args = [g.argv[_bump(g)]] if _has_arg(g) else []
        entry.options.append(Option(ospec.name, ospec.parse(opt_args, ctx), invert))
        return
    if ospec.parse is not None:
        args = [optarg if optarg is not None else ""]
        for _ in range(ospec.nargs - 1):
            if not _has_arg(g):
                raise _err(f"--{ospec.name} requires {ospec.nargs} args.")
            args.append(g.argv[_bump(g)])
        value = ospec.parse(args, ctx)
    entry.options.append(Option(ospec.name, value, invert))


@lru_cache(maxsize=4096)
def _negatable(value: object, negated: bool) -> Negatable:
    """Negatable values are immutable: lines share them (same interfaces, protocols, nets)."""
    return Negatable(value, negated)


@lru_cache(maxsize=256)
def _verdict(name: str) -> Target:
    """The (immutable) target of ``-j ACCEPT`` and other standard verdicts, shared."""
    return Target(name)


def _expand(spec: RuleSpec, matches: list[Match], target: Target | None, family: Family,
            location: Location | None) -> list[Rule]:
    """One rule per (source, destination) pair, source-major as iptables appends them."""
    srcs: list[Address | None] = (
        list(parse_addresses(spec.src, family)) if spec.src is not None else [None])
    dsts: list[Address | None] = (
        list(parse_addresses(spec.dst, family)) if spec.dst is not None else [None])
    src_neg, dst_neg = "s" in spec.inv, "d" in spec.inv
    base = Rule(
        in_iface=_negatable(spec.in_iface, "i" in spec.inv) if spec.in_iface is not None else None,
        out_iface=(_negatable(spec.out_iface, "o" in spec.inv)
                   if spec.out_iface is not None else None),
        protocol=_negatable(spec.protocol, "p" in spec.inv) if spec.protocol is not None else None,
        fragment=("f" not in spec.inv) if spec.fragment else None,
        matches=tuple(matches),
        target=target,
        counters=spec.counters,
        location=location,
        src=_negatable(srcs[0], src_neg) if srcs[0] is not None else None,
        dst=_negatable(dsts[0], dst_neg) if dsts[0] is not None else None,
    )
    if len(srcs) == 1 and len(dsts) == 1:
        return [base]
    return [base.with_(src=_negatable(s, src_neg) if s is not None else None,
                       dst=_negatable(d, dst_neg) if d is not None else None)
            for s in srcs for d in dsts]


__all__ = ["Command", "RuleSpec", "parse_command", "find_match", "proto_to_name"]
