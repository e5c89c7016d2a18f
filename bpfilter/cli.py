"""Command line: ``bpfilter print``, ``bpfilter-restore`` / ``bpfilter6-restore``, save.

The restore front ends take iptables-restore's flags (``-c -v -t -n -w [secs]
-W usecs -T table -M cmd -V -h [file]``) plus bpfilter's ``--hook`` and
``--iface``; loading goes through ``bpfilter.pipeline``.
Errors print like iptables-restore 1.8.9:
``iptables-restore v1.8.9 (bpfilter): <why>`` + ``Error occurred at line: N``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bpfilter import pipeline
from bpfilter.frontend.errors import RestoreError
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
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import Family
from bpfilter.plan import HOOKS, Plan, plan_ruleset

VERSION = "1.8.9 (bpfilter)"
DATA_DIR = Path(__file__).resolve().parent / "data"



def _read(path: str | None) -> tuple[str, str]:
    if path is None or path == "-":
        return sys.stdin.read(), "<stdin>"
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read(), path


def format_error(prog: str, e: RestoreError) -> str:
    """iptables-restore's two error shapes: parameter problems and failed lines."""
    if e.kind == "commit":
        return f"{prog}: {e.message}"
    if e.kind == "failed":
        return f"{prog}: line {e.line} failed\n{prog}: {e.message}"
    text = f"{prog} v{VERSION}: {e.message.strip()}"
    if e.line:
        text += (f"\nError occurred at line: {e.line}"
                 f"\nTry `{prog} -h' or '{prog} --help' for more information.")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter SUBCOMMAND``: print (canonical iptables-save text of a file)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser, so `bpfilter bench -h` shows its options
        return _bench(argv[1:])
    ap = argparse.ArgumentParser(prog="bpfilter", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("print", help="print a ruleset as iptables-legacy-save would")
    p.add_argument("file", nargs="?", help="iptables-save text (default: stdin)")
    p.add_argument("-6", dest="v6", action="store_true", help="IPv6 (ip6tables) ruleset")
    p.add_argument("-c", "--counters", action="store_true", help="keep and print counters")
    p = sub.add_parser("plan", help="where each rule runs (BPF hook or netfilter) and why")
    p.add_argument("file", nargs="?", help="iptables-save text (default: stdin)")
    p.add_argument("-6", dest="v6", action="store_true", help="IPv6 (ip6tables) ruleset")
    p.add_argument("--hook", default="auto", choices=HOOKS)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (("status", "what is attached where"),
                       ("flush", "remove everything bpfilter attached and pinned"),
                       ("attach-new", "attach the loaded xdp/tc filter to interfaces that "
                                      "appeared since (matching --iface patterns)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-6", dest="v6", action="store_true", help="IPv6")
    p = sub.add_parser("migrate", help="take over the live iptables ruleset (dry run unless "
                                        "--apply)")
    p.add_argument("-6", dest="v6", action="store_true", help="IPv6")
    p.add_argument("--hook", default="auto", choices=HOOKS)
    p.add_argument("--iface", action="append", default=[], help="xdp/tc: interface or pattern")
    p.add_argument("--apply", action="store_true", help="swap it in (after verification)")
    p.add_argument("--force", action="store_true", help="apply even if verification differs")
    p.add_argument("--no-verify", action="store_true", help="skip the twin-namespace check")
    p.add_argument("--frames", type=int, default=500, help="packets to verify with")
    p = sub.add_parser("bench", help="ns/packet of FILE through BPF_PROG_TEST_RUN per hook "
                                      "(see `bpfilter bench -h`)", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("verify", help="same packets through iptables-legacy and bpfilter in "
                                       "throwaway twin namespaces; exit 0 only if all agree")
    p.add_argument("file", help="iptables-save text")
    p.add_argument("--hook", default="nf", choices=("nf", "xdp", "tc"))
    p.add_argument("--packets", type=int, default=2000, help="packets to send")
    p.add_argument("--seed", type=int, default=0, help="packet generator seed (replays a run)")
    sub.add_parser("data-dir", help="where the systemd unit, udev rule and "
                                    "netfilter-persistent plugin are installed")
    p = sub.add_parser("rollback", help="put back the netfilter ruleset from before migrate")
    p.add_argument("-6", dest="v6", action="store_true", help="IPv6")
    args = ap.parse_args(argv)
    family = Family.IPV6 if getattr(args, "v6", False) else Family.IPV4
    if args.cmd in ("migrate", "rollback"):
        return _migrate(args, family)
    if args.cmd == "verify":
        return _verify(args)
    if args.cmd == "bench":
        return _bench(args.bench_args)
    if args.cmd == "data-dir":
        print(DATA_DIR)
        return 0
    if args.cmd == "status":
        print(pipeline.status(family))
        return 0
    if args.cmd == "flush":
        print(f"removed {pipeline.flush(family)} attachments")
        return 0
    if args.cmd == "attach-new":
        for line in pipeline.attach_new(family):
            print(f"attached {line}")
        return 0
    if args.cmd == "plan":
        text, name = _read(args.file)
        try:
            rs = parse_restore(text, family=family, filename=name)
        except RestoreError as e:
            print(format_error("bpfilter plan", e), file=sys.stderr)
            return 1
        plan = plan_ruleset(rs, args.hook)
        print(plan.to_json() if args.json else _plan_text(plan))
        return 0
    if args.cmd == "print":
        text, name = _read(args.file)
        prog = "ip6tables-restore" if args.v6 else "iptables-restore"
        try:
            rs = parse_restore(text, family=Family.IPV6 if args.v6 else Family.IPV4,
                               filename=name, counters=args.counters)
        except RestoreError as e:
            print(format_error(prog, e), file=sys.stderr)
            return 1
        sys.stdout.write(print_ruleset(rs, counters=args.counters))
        return 0
    return 2


def _migrate(args: argparse.Namespace, family: Family) -> int:
    """`bpfilter migrate` / `bpfilter rollback` (see bpfilter.migrate)."""
    from bpfilter import migrate

    prog = f"bpfilter {args.cmd}"
    try:
        if args.cmd == "rollback":
            print(migrate.rollback(family))
            return 0
        m = migrate.prepare(family, args.hook, verify=not args.no_verify, frames=args.frames)
        print(_plan_text(m.plan))
        if m.verified:
            print(m.verified)
        if not args.apply:
            print("dry run: nothing changed (use --apply to migrate)")
            return 1 if m.mismatches else 0
        migrate.apply(m, tuple(args.iface), force=args.force)
        print(f"migrated: bpfilter runs {m.plan.summary()}; the netfilter ruleset from "
              f"before is kept for `bpfilter rollback`")
        return 0
    except RestoreError as e:
        print(format_error(prog, e), file=sys.stderr)
        return 1
    except (migrate.MigrateError, pipeline.PipelineError, OSError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1


def _bench(argv: Sequence[str]) -> int:
    from bpfilter.bench_cli import main as bench_main

    return bench_main(list(argv))


def _verify(args: argparse.Namespace) -> int:
    from bpfilter.verify.differential import verify_with_bpfilter

    text, name = _read(args.file)
    try:
        parse_restore(text, family=Family.IPV4, filename=name)
    except RestoreError as e:
        print(format_error("bpfilter verify", e), file=sys.stderr)
        return 1
    result = verify_with_bpfilter(text, args.hook, frames=args.packets, seed=args.seed)
    if result.mismatches:
        print(result.report())
        return 1
    print(f"{name}: {result.frames} packets, same verdict in iptables-legacy and bpfilter "
          f"--hook {args.hook} ({result.seconds:.1f}s)")
    return 0


def _plan_text(plan: Plan) -> str:
    rows = [f"{r.table}/{r.chain} #{r.rule} (line {r.line}): {r.placement}"
            + (f" at {r.hook}" if r.hook else "") + f" — {r.reason}" for r in plan.rules]
    return "\n".join([*rows, plan.summary()])


@dataclass
class RestoreArgs:
    """iptables-restore 1.8.9's options plus bpfilter's --hook / --iface."""

    counters: bool = False
    verbose: int = 0
    version: bool = False
    test: bool = False
    help: bool = False
    noflush: bool = False
    wait: float | None = 0.0  # -w N: seconds; None: -w alone (wait forever)
    wait_interval: bool = False
    table: str | None = None
    hook: str = "auto"
    ifaces: list[str] = field(default_factory=list)
    file: str | None = None


class UsageError(Exception):
    """A command-line problem, worded as glibc's getopt / iptables-restore print it."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


_RESTORE_LONG = LongTable.build([LongOpt(n, a, v) for n, a, v in (
    ("counters", NO_ARGUMENT, "c"), ("verbose", NO_ARGUMENT, "v"),
    ("version", NO_ARGUMENT, "V"), ("test", NO_ARGUMENT, "t"), ("help", NO_ARGUMENT, "h"),
    ("noflush", NO_ARGUMENT, "n"), ("modprobe", REQUIRED_ARGUMENT, "M"),
    ("table", REQUIRED_ARGUMENT, "T"), ("wait", OPTIONAL_ARGUMENT, "w"),
    ("wait-interval", OPTIONAL_ARGUMENT, "W"), ("hook", REQUIRED_ARGUMENT, "hook"),
    ("iface", REQUIRED_ARGUMENT, "iface"))])
_RESTORE_SHORT = parse_optstring("bcvVthnwWM:T:")  # -w5 is refused, as in 1.8.9


def parse_restore_args(argv: Sequence[str], prog: str) -> RestoreArgs:
    """getopt_long over iptables-restore's table, with its optional-argument quirk:
    ``-w 5`` takes the next word as seconds when it does not start with '-'."""
    g = GetOpt(argv, _RESTORE_SHORT)
    a = RestoreArgs()
    while (c := g.next(_RESTORE_LONG)) is not None:
        word = argv[g.optind - 1] if g.optind else ""
        if c == NON_OPTION:
            if a.file is None:
                a.file = g.optarg
            continue
        if c == UNKNOWN:
            if word.startswith("--"):
                raise UsageError(f"{prog}: unrecognized option '{word}'")
            bad = next((ch for ch in word[1:] if ch not in _RESTORE_SHORT), word[1:2])
            raise UsageError(f"{prog}: invalid option -- '{bad}'")
        if c == MISSING:
            raise UsageError(f"{prog}: option requires an argument -- '{word.lstrip('-')}'")
        optarg = g.optarg
        if c in ("w", "W") and optarg is None and g.optind < len(argv) \
                and argv[g.optind][:1] not in ("-", "!"):
            optarg = argv[g.optind]
            g.optind += 1
        if c == "c":
            a.counters = True
        elif c == "v":
            a.verbose += 1
        elif c == "V":
            a.version = True
        elif c == "t":
            a.test = True
        elif c == "h":
            a.help = True
        elif c == "n":
            a.noflush = True
        elif c == "T":
            a.table = optarg
        elif c == "w":
            a.wait = None if optarg is None else _wait_seconds(optarg, prog)
        elif c == "W":
            a.wait_interval = True
        elif c == "hook":
            if optarg not in HOOKS:
                raise UsageError(f"{prog}: --hook must be one of {', '.join(HOOKS)}")
            a.hook = optarg
        elif c == "iface":
            a.ifaces.append(optarg or "")
    return a


def _wait_seconds(text: str, prog: str) -> float:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{prog} v{VERSION}: wait seconds not numeric\n"
                         f"Error occurred at line: 0\nTry `{prog} -h' or '{prog} --help' "
                         "for more information.", status=2)
    return float(value)


USAGE = ("Usage: {prog} [-c] [-v] [-V] [-t] [-h] [-n] [-w secs] [-W usecs] [-T table] "
         "[-M command] [file]\n"
         "\t   [ --counters ]\n\t   [ --verbose ]\n\t   [ --version]\n\t   [ --test ]\n"
         "\t   [ --help ]\n\t   [ --noflush ]\n\t   [ --wait=<seconds>\n"
         "\t   [ --table=<TABLE> ]\n\t   [ --modprobe=<command> ]\n")
BPFILTER_USAGE = ("bpfilter options:\n"
                  "\t   [ --hook=auto|nf|xdp|tc ]   where the filter table runs\n"
                  "\t   [ --iface=IF ]              xdp/tc: interface or pattern (eth+),"
                  " repeatable\n")


def _prog_name(default: str) -> str:
    """Installed as `iptables-restore` (a symlink), speak as iptables-restore."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name.endswith("-restore") else default


def _restore(argv: Sequence[str] | None, family: Family, prog: str) -> int:
    prog = _prog_name(prog)
    try:
        args = parse_restore_args(sys.argv[1:] if argv is None else list(argv), prog)
    except UsageError as e:
        print(e, file=sys.stderr)
        if e.status == 1 and ("invalid option" in str(e) or "unrecognized" in str(e)
                              or "requires" in str(e)):
            print(f"Try `{prog} -h' for more information.", file=sys.stderr)
        return e.status
    if args.help:
        sys.stdout.write(USAGE.format(prog=prog) + BPFILTER_USAGE)
        return 0
    if args.version:
        print(f"{prog} v{VERSION}")
        return 0
    if args.wait_interval:
        print("Ignoring deprecated --wait-interval option.", file=sys.stderr)
        if args.wait == 0.0:
            print("Option --wait-interval requires option --wait", file=sys.stderr)
            return 1
    try:
        text, name = _read(args.file)
    except OSError as e:
        print(f"Can't open {args.file}: {e.strerror}", file=sys.stderr)
        return 1
    if args.test:
        try:  # checked against what is loaded, as iptables-restore -t checks the kernel's
            parse_restore(text, family=family, filename=name, noflush=args.noflush,
                          table_filter=args.table, counters=args.counters,
                          base=pipeline.current_ruleset(family))
        except RestoreError as e:
            print(format_error(prog, e), file=sys.stderr)
            return 2 if e.kind == "param" else 1
        return 0
    req = pipeline.RestoreRequest(
        text, family, name, hook=args.hook, ifaces=tuple(args.ifaces), counters=args.counters,
        noflush=args.noflush, table=args.table, wait=args.wait)
    try:
        result = pipeline.restore(req)
    except RestoreError as e:
        print(format_error(prog, e), file=sys.stderr)
        return 2 if e.kind == "param" else 1
    except pipeline.LockBusy as e:
        print(e, file=sys.stderr)
        return 4
    except pipeline.RollbackIncomplete as e:
        print(f"{prog}: {e}\n{prog}: check `bpfilter status`", file=sys.stderr)
        return 1
    except (pipeline.PipelineError, OSError, ValueError) as e:
        print(f"{prog}: {e}\n{prog}: nothing changed; the previous ruleset stays in force",
              file=sys.stderr)
        return 1
    except pipeline.InterruptedAfterCommit as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the previous ruleset stays in force", file=sys.stderr)
        return 130
    if args.verbose and result.plan is not None:
        print(f"{prog}: {result.plan.summary()}", file=sys.stderr)
    return 0


def restore_main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter-restore``: iptables-restore for IPv4."""
    return _restore(argv, Family.IPV4, "bpfilter-restore")


def restore6_main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter6-restore``: ip6tables-restore."""
    return _restore(argv, Family.IPV6, "bpfilter6-restore")


def _save(argv: Sequence[str] | None, family: Family, prog: str) -> int:
    ap = argparse.ArgumentParser(prog=prog, description="print what bpfilter has loaded")
    ap.add_argument("-c", "--counters", action="store_true", help="print rule counters")
    ap.add_argument("-t", "--table", help="only this table")
    args = ap.parse_args(argv)
    try:
        sys.stdout.write(pipeline.save(family, counters=args.counters, table=args.table))
    except (OSError, RestoreError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    return 0


def save_main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter-save``: iptables-save of what is loaded, kernel counters included."""
    return _save(argv, Family.IPV4, "bpfilter-save")


def save6_main(argv: Sequence[str] | None = None) -> int:
    return _save(argv, Family.IPV6, "bpfilter6-save")


if __name__ == "__main__":
    sys.exit(main())
