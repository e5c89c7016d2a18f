"""ns/packet (BPF_PROG_TEST_RUN), compile and load time, as JSON and a readable table.

    python -m bench.report [--sizes 10 1000 10000 100000] [--kinds classbench blocklist]
                           [--flavors xdp tc nf] [--linear-up-to 1000] [--json FILE]

For each generated ruleset and flavor: the lookup program ("lookup": trees even for
10 rules, i.e. the same program shape at every size) and, up to --linear-up-to rules,
the linear program for comparison. Probes: packets whose first match is the first,
middle and last rule, and one matching nothing; every verdict is checked against the
generator's reference semantics. Runs in a network namespace it creates (root).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from bench.measure import TestRunRow, in_lab, measure_testrun
from bench.rulesets import blocklist, classbench

GENERATORS = {"classbench": classbench, "blocklist": blocklist}


def run(sizes: list[int], kinds: list[str], flavors: list[str], repeat: int,
        linear_up_to: int) -> list[TestRunRow]:
    rows: list[TestRunRow] = []
    for kind in kinds:
        for n in sizes:
            rules = GENERATORS[kind](n)
            shapes = ["lookup"] + (["linear"] if n <= linear_up_to else [])
            t0 = time.perf_counter()
            got = in_lab(measure_testrun, rules, flavors, shapes, repeat)
            for r in got:
                rows.append(r)
                ok = "" if r.verdict == r.expect else f"  WRONG (expected {r.expect})"
                print(f"{kind:10} {n:6d} {r.flavor:3} {r.shape:6} {r.probe:6} {r.ns:5d} ns  "
                      f"insns {r.insns:6d}  compile {r.compile_s:6.2f}s  load {r.load_s:5.2f}s"
                      f"{ok}", flush=True)
            print(f"# {kind} {n}: {time.perf_counter() - t0:.1f}s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000, 100000])
    ap.add_argument("--kinds", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    ap.add_argument("--flavors", nargs="+", default=["xdp", "tc", "nf"])
    ap.add_argument("--repeat", type=int, default=100000)
    ap.add_argument("--linear-up-to", type=int, default=1000)
    ap.add_argument("--json", help="write all rows here")
    args = ap.parse_args()
    rows = run(args.sizes, args.kinds, args.flavors, args.repeat, args.linear_up_to)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(r) for r in rows], fh, indent=1)


if __name__ == "__main__":
    main()
