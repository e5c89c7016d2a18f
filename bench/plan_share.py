"""Share of filter-table rules that run in BPF, per corpus file and overall.

    python -m bench.plan_share [--hook auto|xdp|tc|nf] [--reasons] [CORPUS_DIR]

Reads every ruleset of ../shared/corpus/real (beside the repo) that parses, plans it
with `bpfilter.plan.plan_ruleset` and counts the filter table's reachable rules in
BPF; `--reasons` lists why each other rule stays in netfilter, most common first.
Files that are not whole rulesets (ufw templates needing ufw's chains, `-n` blocks)
and deliberately broken ones (NEG-*) are skipped with the parser's reason.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.plan import plan_ruleset

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "real"


@dataclass(frozen=True)
class FileShare:
    name: str
    in_bpf: int
    total: int
    unreachable: int
    reasons: tuple[str, ...]  # one per rule left in netfilter
    skipped: str = ""


def family_of(path: Path) -> Family:
    return Family.IPV6 if re.search(r"(\.v6|6\.rules|ipv6)", path.name) else Family.IPV4


def share_of(path: Path, hook: str = "auto") -> FileShare:
    try:
        rs = parse_restore(path.read_text(), family=family_of(path), filename=path.name)
    except Exception as e:  # noqa: BLE001 - a file the parser refuses is reported, not fatal
        return FileShare(path.name, 0, 0, 0, (), skipped=str(e).splitlines()[0])
    plan = plan_ruleset(rs, hook)
    rows = [r for r in plan.rules if r.table == "filter"]
    in_bpf, total = plan.share()
    return FileShare(path.name, in_bpf, total, sum(r.placement == "unreachable" for r in rows),
                     tuple(r.reason for r in rows if r.placement == "netfilter"))


def corpus_shares(corpus: Path = CORPUS, hook: str = "auto") -> list[FileShare]:
    files = sorted(p for p in corpus.iterdir() if p.is_file() and not p.name.startswith("NEG"))
    return [share_of(p, hook) for p in files]


def _short(reason: str) -> str:
    return re.sub(r"rule \d+", "rule N", reason)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", type=Path, default=CORPUS)
    ap.add_argument("--hook", default="auto")
    ap.add_argument("--reasons", action="store_true")
    args = ap.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    shares = corpus_shares(args.corpus, args.hook)
    tb = tt = v4b = v4t = 0
    for s in shares:
        if s.skipped:
            print(f"{s.name:56} skipped: {s.skipped[:70]}")
            continue
        pct = f"{100 * s.in_bpf / s.total:5.1f}%" if s.total else "    -"
        extra = f" (+{s.unreachable} unreachable)" if s.unreachable else ""
        print(f"{s.name:56} {s.in_bpf:4}/{s.total:<4} {pct}{extra}")
        tb += s.in_bpf
        tt += s.total
        if family_of(args.corpus / s.name) is Family.IPV4:
            v4b += s.in_bpf
            v4t += s.total
    print(f"{'OVERALL':56} {tb:4}/{tt:<4} {100 * tb / max(tt, 1):5.1f}%")
    print(f"{'OVERALL IPv4':56} {v4b:4}/{v4t:<4} {100 * v4b / max(v4t, 1):5.1f}%")
    if args.reasons:
        counts = collections.Counter(_short(r) for s in shares for r in s.reasons)
        for reason, n in counts.most_common():
            print(f"{n:5}  {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
