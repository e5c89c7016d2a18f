"""Command line: ``bpfilter print``, ``bpfilter-restore`` / ``bpfilter6-restore``, save.

The restore front ends take iptables-restore's flags (``-c -v -t -n -w [secs]
-W usecs -T table -M cmd -V -h [file]``) plus bpfilter's ``--hook`` and
``--iface``; loading goes through ``bpfilter.pipeline``.
Errors print like iptables-restore 1.8.9:
``iptables-restore v1.8.9 (bpfilter): <why>`` + ``Error occurred at line: N``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bpfilter import pipeline
from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import Family
from bpfilter.plan import HOOKS, Plan, plan_ruleset

VERSION = "1.8.9 (bpfilter)"



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
                       ("flush", "remove everything bpfilter attached and pinned")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-6", dest="v6", action="store_true", help="IPv6")
    args = ap.parse_args(argv)
    family = Family.IPV6 if getattr(args, "v6", False) else Family.IPV4
    if args.cmd == "status":
        print(pipeline.status(family))
        return 0
    if args.cmd == "flush":
        print(f"removed {pipeline.flush(family)} attachments")
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


def _plan_text(plan: Plan) -> str:
    rows = [f"{r.table}/{r.chain} #{r.rule} (line {r.line}): {r.placement}"
            + (f" at {r.hook}" if r.hook else "") + f" — {r.reason}" for r in plan.rules]
    return "\n".join([*rows, plan.summary()])


def restore_parser(prog: str) -> argparse.ArgumentParser:
    """iptables-restore 1.8.9's options."""
    ap = argparse.ArgumentParser(prog=prog, add_help=False)
    ap.add_argument("-c", "--counters", action="store_true")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-V", "--version", action="store_true")
    ap.add_argument("-t", "--test", action="store_true")
    ap.add_argument("-h", "--help", action="store_true")
    ap.add_argument("-n", "--noflush", action="store_true")
    ap.add_argument("-w", "--wait", nargs="?", const=-1, type=int, default=0)
    ap.add_argument("-W", "--wait-interval", type=int, default=None)
    ap.add_argument("-M", "--modprobe")
    ap.add_argument("-T", "--table")
    ap.add_argument("--hook", default="auto", choices=HOOKS,
                    help="where the filter table runs (auto: fastest exact hook)")
    ap.add_argument("--iface", action="append", default=[],
                    help="interface for xdp/tc (repeatable; default: all but lo)")
    ap.add_argument("file", nargs="?")
    return ap


USAGE = ("Usage: {prog} [-c] [-v] [-V] [-t] [-h] [-n] [-w secs] [-W usecs] [-T table] "
         "[-M command] [file]\n"
         "\t   [ --counters ]\n\t   [ --verbose ]\n\t   [ --version]\n\t   [ --test ]\n"
         "\t   [ --help ]\n\t   [ --noflush ]\n\t   [ --wait=<seconds>\n"
         "\t   [ --table=<TABLE> ]\n\t   [ --modprobe=<command> ]\n")


def _restore(argv: Sequence[str] | None, family: Family, prog: str) -> int:
    ap = restore_parser(prog)
    try:
        args = ap.parse_args(argv)
    except SystemExit:
        print(f"Try `{prog} -h' for more information.", file=sys.stderr)
        return 1
    if args.help:
        sys.stderr.write(USAGE.format(prog=prog))
        return 0
    if args.version:
        print(f"{prog} v{VERSION}")
        return 0
    if args.wait_interval is not None and not args.wait:
        print("Option --wait-interval requires option --wait", file=sys.stderr)
        return 1
    try:
        text, name = _read(args.file)
    except OSError as e:
        print(f"Can't open {args.file}: {e.strerror}", file=sys.stderr)
        return 1
    if args.test:
        try:
            parse_restore(text, family=family, filename=name, noflush=args.noflush,
                          table_filter=args.table, counters=args.counters)
        except RestoreError as e:
            print(format_error(prog, e), file=sys.stderr)
            return 2 if e.kind == "param" else 1
        return 0
    req = pipeline.RestoreRequest(
        text, family, name, hook=args.hook, ifaces=tuple(args.iface), counters=args.counters,
        noflush=args.noflush, table=args.table,
        wait=None if args.wait == -1 else float(args.wait))
    try:
        result = pipeline.restore(req)
    except RestoreError as e:
        print(format_error(prog, e), file=sys.stderr)
        return 2 if e.kind == "param" else 1
    except pipeline.LockBusy as e:
        print(e, file=sys.stderr)
        return 4
    except (pipeline.PipelineError, OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
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
