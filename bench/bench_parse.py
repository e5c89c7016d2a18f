"""Parse speed: a generated 100k-rule ruleset through parse_restore (pytest-benchmark).

Run: ``pytest bench/bench_parse.py --benchmark-enable``.
"""

from __future__ import annotations

import random

from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family

N_RULES = 100_000


def generate(n: int = N_RULES, seed: int = 1) -> str:
    """A filter table shaped like real big rulesets: address lists, ports, a few chains."""
    rnd = random.Random(seed)
    lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":BLOCK - [0:0]", ":SVC - [0:0]"]
    for i in range(n):
        a, b, c = rnd.randrange(1, 224), rnd.randrange(256), rnd.randrange(256)
        kind = i % 4
        if kind == 0:
            lines.append(f"-A BLOCK -s {a}.{b}.{c}.0/24 -j DROP")
        elif kind == 1:
            lines.append(f"-A SVC -d 10.{b}.{c}.1/32 -p tcp -m tcp --dport {1 + i % 65000} "
                         f"-j ACCEPT")
        elif kind == 2:
            lines.append(f"-A INPUT -i eth{c % 4} -p udp -m multiport --dports 53,{i % 60000 + 1}"
                         f" -m comment --comment \"rule {i}\" -j SVC")
        else:
            lines.append(f"-A FORWARD -s {a}.{b}.0.0/16 -p icmp -m icmp --icmp-type 8 -j BLOCK")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def test_parse_100k(benchmark):
    text = generate()
    rs = benchmark.pedantic(parse_restore, args=(text,), kwargs={"family": Family.IPV4},
                            rounds=1, iterations=1)
    assert sum(len(c.rules) for c in rs.table("filter").chains) == N_RULES


def test_print_100k(benchmark):
    from bpfilter.frontend.printer import print_ruleset

    rs = parse_restore(generate(), family=Family.IPV4)
    text = benchmark.pedantic(print_ruleset, args=(rs,), rounds=1, iterations=1)
    assert text.count("\n-A ") == N_RULES
