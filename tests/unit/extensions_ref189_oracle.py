"""Re-record ``data/extensions_ref189.tsv`` with the real iptables-legacy 1.8.9 (needs root).

``python -m tests.unit.extensions_ref189_oracle`` runs the rule of every line
through iptables-legacy-restore / -save inside a private network namespace
(created and deleted here, with the ipsets some rules name) and rewrites the
last column: what 1.8.9 printed after ``-A CHAIN``, or FAIL. To add a case,
append a line with any last column and run this. ``test_extensions_ref189``
replays the file without root.
"""

from __future__ import annotations

import subprocess
import sys

from bpfilter.ir import BUILTIN_CHAINS
from tests.unit.test_extensions_ref189 import DATA

NS = "bpf_ext_ref189_oracle"
SETUP = ("ipset create foo hash:ip", "ipset create bar hash:ip,port",
         "ipset create m hash:ip skbinfo", "ipset create foo6 hash:ip family inet6")
# -m rateest needs the estimators it names: RATEEST rules in an unreferenced
# mangle chain hold RE1 and RE2 (re-added whenever a case flushes mangle).
HOLD_CHAIN = "ORACLE_RATEEST"
HOLD = tuple(f"-A {HOLD_CHAIN} -j RATEEST --rateest-name {n} --rateest-interval 250ms "
             "--rateest-ewmalog 0.5s" for n in ("RE1", "RE2"))


def _ns(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", NS, *argv], input=stdin,
                          capture_output=True, text=True, check=False)


def _hold_estimators(tool: str) -> None:
    _ns(tool, "-t", "mangle", "-N", HOLD_CHAIN)
    for rule in HOLD:
        _ns(tool, "-t", "mangle", *rule.split())


def record(lines: list[str]) -> list[str]:
    """The TSV lines with their last column as iptables-legacy 1.8.9 gives it."""
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for cmd in SETUP:
            _ns(*cmd.split())
        for tool in ("iptables-legacy", "ip6tables-legacy"):
            _hold_estimators(tool)
        out = []
        for line in lines:
            if line.startswith("#") or not line.strip():
                out.append(line)
                continue
            fam, table, chain, rule, _old = line.split("\t")
            tool = "ip6tables-legacy" if fam == "6" else "iptables-legacy"
            decl = "" if chain in BUILTIN_CHAINS.get(table, ()) else f":{chain} - [0:0]\n"
            res = _ns(f"{tool}-restore", stdin=f"*{table}\n{decl}-A {chain} {rule}\nCOMMIT\n")
            printed = "FAIL"
            if res.returncode == 0:
                save = _ns(f"{tool}-save", "-t", table).stdout
                first = next(s for s in save.splitlines() if s.startswith(f"-A {chain}"))
                printed = first.removeprefix(f"-A {chain}").lstrip()
                _ns(tool, "-t", table, "-F")
                _ns(tool, "-t", table, "-X")
                if table == "mangle":
                    _hold_estimators(tool)
            out.append("\t".join((fam, table, chain, rule, printed)))
        return out
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


if __name__ == "__main__":
    lines = record(DATA.read_text().splitlines())
    DATA.write_text("\n".join(lines) + "\n")
    print(f"rewrote {DATA}", file=sys.stderr)
