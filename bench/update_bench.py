"""Compile+load time and one-rule update time, bpfilter against iptables; prints JSON.

    python -m bench.update_bench [--sizes 10000 100000] [--updates 30]

bpfilter (in-process, as bpfilter-restore does it): parse, compile_table (nf and xdp)
and load (maps created and filled, programs verified) of a ClassBench-like ruleset;
then one-rule changes written into the live maps (`LiveLookup.replace`: rule k
becomes another rule, k random; the median and worst of the changes done in place,
and how many needed a recompile instead). iptables: `iptables-legacy-restore` and
`iptables-nft-restore` of the same text, `iptables-legacy -R INPUT k RULE` and
`iptables-legacy -I INPUT 1 RULE` with the ruleset loaded (wall clock of the
commands). Everything runs in a network namespace created here.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import time

from bench.measure import Lab, in_lab
from bench.rulesets import HEAD, classbench, restore_text
from bpfilter.backend import compile_table
from bpfilter.backend.lookup import plan_lookups
from bpfilter.backend.lookup_update import LiveLookup
from bpfilter.backend.plan import plan_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family


def bpfilter_times(n: int, updates: int, lab: Lab) -> dict:
    rules = classbench(n)
    text = restore_text(rules)
    out: dict = {"rules": n}
    t0 = time.perf_counter()
    table = parse_restore(text, family=Family.IPV4).table("filter")
    assert table is not None
    out["parse_s"] = time.perf_counter() - t0
    for flavor in ("nf", "xdp"):
        t0 = time.perf_counter()
        progs = compile_table(table, Family.IPV4, flavor)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        lt = LoadedTable(progs)
        t2 = time.perf_counter()
        out[f"{flavor}_compile_s"], out[f"{flavor}_load_s"] = t1 - t0, t2 - t1
        if flavor == "nf":
            (lk,) = plan_lookups(table, plan_table(table, Family.IPV4).slot).values()
            live = LiveLookup(lk, lt.maps[lk.nodes_map], lt.maps[lk.rules_map])
            fresh = classbench(n + 4 * updates, seed=77)[n:]
            rng = random.Random(5)
            times, refused = [], 0
            for new in fresh:
                (rule,) = parse_restore(HEAD + new.line() + "\nCOMMIT\n",
                                        family=Family.IPV4).table("filter").chain("INPUT").rules
                pos = rng.randrange(n)
                t0 = time.perf_counter()
                ok = live.replace(pos, rule)
                dt = time.perf_counter() - t0
                if ok:
                    times.append(dt)
                else:
                    refused += 1
                if len(times) == updates:
                    break
            out["update_median_ms"] = statistics.median(times) * 1e3
            out["update_max_ms"] = max(times) * 1e3
            out["update_in_place"], out["update_refused"] = len(times), refused
        lt.close()
    return out


def iptables_times(n: int, ns: str) -> dict:
    rules = classbench(n)
    text = restore_text(rules)
    out: dict = {"rules": n}

    def timed(argv: list[str], stdin: str | None = None) -> float:
        t0 = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, text=True,
                       capture_output=True, check=True)
        return time.perf_counter() - t0

    out["nft_restore_s"] = timed(["iptables-nft-restore"], text)
    timed(["iptables-nft-restore"], HEAD + "COMMIT\n")
    out["legacy_restore_s"] = timed(["iptables-legacy-restore"], text)
    line = classbench(n + 1, seed=77)[n].line().split()[2:]  # without "-A INPUT"
    rs, ins = [], []
    for k in range(5):
        rs.append(timed(["iptables-legacy", "-R", "INPUT", str(1 + k * (n // 5)), *line]))
        ins.append(timed(["iptables-legacy", "-I", "INPUT", "1", *line]))
    out["legacy_replace_ms"] = statistics.median(rs) * 1e3
    out["legacy_insert_ms"] = statistics.median(ins) * 1e3
    timed(["iptables-legacy-restore"], HEAD + "COMMIT\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--updates", type=int, default=30)
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        row = in_lab(bpfilter_times, n, args.updates)
        from bench.measure import lab

        with lab() as lb:
            row.update(iptables_times(n, lb.ns))
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
