"""Command line: ``bpfilter print``, ``bpfilter-restore`` / ``bpfilter6-restore``, save.

The restore front ends take iptables-restore's flags (``-c -v -t -n -w [secs]
-W usecs -T table -M cmd -V -h [file]``). Only ``--test`` (parse and check)
is wired here; loading goes through ``load_hook`` which the pipeline sets.
Errors print like iptables-restore 1.8.9:
``iptables-restore v1.8.9 (bpfilter): <why>`` + ``Error occurred at line: N``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import Family, Ruleset

VERSION = "1.8.9 (bpfilter)"

# Set by the pipeline: load(ruleset, args) -> exit code. None: only --test works.
load_hook: Callable[[Ruleset, argparse.Namespace], int] | None = None


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
    args = ap.parse_args(argv)
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
    base = None
    if args.noflush and load_hook is not None:
        base = getattr(load_hook, "current", lambda fam: None)(family)
    try:
        rs = parse_restore(text, family=family, filename=name, noflush=args.noflush,
                           base=base, table_filter=args.table, counters=args.counters)
    except RestoreError as e:
        print(format_error(prog, e), file=sys.stderr)
        return 2 if e.kind == "param" else 1
    if args.test:
        return 0
    if load_hook is None:
        print(f"{prog}: loading is not implemented yet (use --test)", file=sys.stderr)
        return 1
    return load_hook(rs, args)


def restore_main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter-restore``: iptables-restore for IPv4."""
    return _restore(argv, Family.IPV4, "bpfilter-restore")


def restore6_main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter6-restore``: ip6tables-restore."""
    return _restore(argv, Family.IPV6, "bpfilter6-restore")


def save_main(argv: Sequence[str] | None = None) -> int:
    """``bpfilter-save``: not wired yet (the pipeline owns the loaded state)."""
    print("bpfilter-save: not implemented yet", file=sys.stderr)
    return 1


def save6_main(argv: Sequence[str] | None = None) -> int:
    print("bpfilter6-save: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
