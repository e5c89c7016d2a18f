"""Re-record ``data/extensions_ref189.tsv`` with the real iptables-legacy 1.8.9 (needs root).

``python -m tests.unit.extensions_ref189_oracle`` runs the rule of every line
through iptables-legacy-restore / -save inside a private network namespace
(created and deleted here, with the ipsets and rate estimators some rules name;
the runner is the .t files' ``conformance_oracle.run_real``) and rewrites the
last column: what 1.8.9 printed after ``-A CHAIN``, or FAIL. To add a case,
append a line with any last column and run this. ``test_extensions_ref189``
replays the file without root.
"""

from __future__ import annotations

import subprocess
import sys

from bpfilter.ir import Family
from tests.unit.conformance_cases import Case
from tests.unit.conformance_oracle import NETNS, run_real
from tests.unit.test_extensions_ref189 import DATA

SETUP = ("ipset create foo hash:ip", "ipset create bar hash:ip,port",
         "ipset create m hash:ip skbinfo", "ipset create foo6 hash:ip family inet6")
# -m rateest needs the estimators it names: RATEEST rules in an unreferenced
# mangle chain hold RE1 and RE2 (re-added whenever a case replaces mangle).
HOLD_CHAIN = "ORACLE_RATEEST"
HOLD = tuple(f"-A {HOLD_CHAIN} -j RATEEST --rateest-name {n} --rateest-interval 250ms "
             "--rateest-ewmalog 0.5s" for n in ("RE1", "RE2"))
TOOLS = {Family.IPV4: "iptables-legacy", Family.IPV6: "ip6tables-legacy"}


def _ns(*argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", NETNS, *argv], capture_output=True, check=False)


def _hold_estimators(tool: str) -> None:
    _ns(tool, "-t", "mangle", "-N", HOLD_CHAIN)
    for rule in HOLD:
        _ns(tool, "-t", "mangle", *rule.split())


def record(lines: list[str]) -> list[str]:
    """The TSV lines with their last column as iptables-legacy 1.8.9 gives it."""
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        for cmd in SETUP:
            _ns(*cmd.split())
        for tool in TOOLS.values():
            _hold_estimators(tool)
        out = []
        for line in lines:
            if line.startswith("#") or not line.strip():
                out.append(line)
                continue
            fam, table, chain, rule, _old = line.split("\t")
            family = Family.IPV6 if fam == "6" else Family.IPV4
            ok, printed, _err = run_real(Case(DATA.name, 0, family, table, chain, rule, None, "OK"))
            if ok:
                # Empty the table now: kernel objects a rule made (hashlimit tables,
                # estimators) must not meet the next case's.
                _ns(TOOLS[family], "-t", table, "-F")
                _ns(TOOLS[family], "-t", table, "-X")
                if table == "mangle":
                    _hold_estimators(TOOLS[family])
            out.append("\t".join((fam, table, chain, rule, printed[0] if ok else "FAIL")))
        return out
    finally:
        subprocess.run(["ip", "netns", "delete", NETNS], check=False)


if __name__ == "__main__":
    lines = record(DATA.read_text().splitlines())
    DATA.write_text("\n".join(lines) + "\n")
    print(f"rewrote {DATA}", file=sys.stderr)
