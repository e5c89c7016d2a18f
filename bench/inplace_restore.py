"""One-rule change through the real `bpfilter-restore` CLI: in place vs full recompile vs
iptables-legacy; prints JSON.

    python -m bench.inplace_restore [--rules 10000] [--changes 10]

In a namespace created here: `bpfilter-restore --hook nf` of a ClassBench-like
ruleset, then `--changes` re-restores of the whole file with one rule (random
position) replaced by another generated rule, each as its own `ip netns exec`
process (wall clock, Python start-up included). A change the maps cannot take in
place falls back to a full recompile and is counted apart (`fallbacks`). The same
change with BPFILTER_NO_INPLACE=1 gives the full recompile time. The split comes
from the same restore run in-process (`pipeline.restore`'s timings: reading the
loaded state back, parsing the new file, planning, rebuilding the trees' mirror,
writing maps/counters/state). iptables: `iptables-legacy-restore` of the changed
file and `iptables-legacy -R INPUT k RULE` with the ruleset loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import lab
from bench.rulesets import classbench, restore_text

BIN = Path(sys.executable).parent


def _state(run_dir: Path) -> dict:
    paths = list((run_dir / "state").glob("*/ipv4.json"))
    assert len(paths) == 1, paths
    (path,) = paths
    return json.loads(path.read_text())


# One restore in a process of its own inside the namespace (the state is keyed by the
# process's namespace: a thread moved by setns would be filed under the host's), printing
# `pipeline.restore`'s phase timings.
SPLIT = """
import json, sys, time
from bpfilter.pipeline import RestoreRequest, restore
text = sys.stdin.read()
t0 = time.perf_counter()
res = restore(RestoreRequest(text, hook="nf"))
print(json.dumps({**res.timings, "total_s": time.perf_counter() - t0,
                  "in_place": res.in_place}))
"""


def run(n: int, changes: int) -> dict:
    rules = classbench(n)
    fresh = classbench(n + 4 * changes, seed=77)[n:]
    rng = random.Random(5)
    out: dict = {"rules": n}
    with lab() as lb, tempfile.TemporaryDirectory(prefix="bpf-inplace-") as tmp:
        run_dir = Path(tmp)
        env = {**os.environ, "BPFILTER_RUN_DIR": str(run_dir)}

        def cli(text: str, *argv: str, extra: dict | None = None) -> float:
            t0 = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", lb.ns, str(BIN / "bpfilter-restore"),
                            "--hook", "nf", *argv], input=text, text=True, check=True,
                           capture_output=True, env={**env, **(extra or {})})
            return time.perf_counter() - t0

        def ipt(argv: list[str], stdin: str | None = None) -> float:
            t0 = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", lb.ns, *argv], input=stdin, text=True,
                           capture_output=True, check=True)
            return time.perf_counter() - t0

        try:
            out["first_restore_s"] = cli(restore_text(rules))
            in_place, fallbacks, full, split = [], 0, [], []
            current = list(rules)
            for new in fresh:
                k = rng.randrange(n)
                current[k] = new
                text = restore_text(current)
                log = len(_state(run_dir)["inplace_log"])
                dt = cli(text)
                if len(_state(run_dir)["inplace_log"]) == log + 1:
                    in_place.append(dt)
                else:
                    fallbacks += 1
                # the same change again, forced through the full path, then back in place
                current[k] = rules[k]
                full.append(cli(restore_text(current), extra={"BPFILTER_NO_INPLACE": "1"}))
                current[k] = new
                proc = subprocess.run(["ip", "netns", "exec", lb.ns, sys.executable, "-c",
                                       SPLIT], input=restore_text(current), text=True,
                                      capture_output=True, check=True, env=env)
                split.append(json.loads(proc.stdout))
                if len(in_place) == changes:
                    break
            out["cli_in_place_median_s"] = statistics.median(in_place)
            out["cli_in_place_max_s"] = max(in_place)
            out["cli_full_recompile_median_s"] = statistics.median(full)
            out["in_place_changes"], out["fallbacks"] = len(in_place), fallbacks
            phases = [s for s in split if s["in_place"]]
            for key in ("load_state_s", "parse_s", "plan_s", "in_place_prepare_s",
                        "in_place_write_s", "in_place_maps_s", "in_place_counters_s",
                        "total_s"):
                out[f"split_{key}"] = statistics.median(s[key] for s in phases)
            # what every CLI run pays before reading its input: Python + imports
            out["cli_startup_s"] = statistics.median(
                ipt([sys.executable, "-c", "import bpfilter.cli, bpfilter.pipeline"])
                for _ in range(3))
            # iptables-legacy: a full restore of the changed file, and -R of one rule
            out["legacy_restore_s"] = ipt(["iptables-legacy-restore"], restore_text(current))
            line = fresh[-1].line().split()[2:]
            out["legacy_replace_s"] = statistics.median(
                ipt(["iptables-legacy", "-R", "INPUT", str(1 + i * (n // 5)), *line])
                for i in range(5))
        finally:
            subprocess.run(["ip", "netns", "exec", lb.ns, str(BIN / "bpfilter"), "flush"],
                           capture_output=True, env=env)
            subprocess.run(["umount", "-l", str(run_dir / "bpffs")], capture_output=True)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=10000)
    ap.add_argument("--changes", type=int, default=10)
    args = ap.parse_args()
    print(json.dumps(run(args.rules, args.changes), indent=1))


if __name__ == "__main__":
    main()
