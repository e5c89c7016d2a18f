"""bpfilter-restore's flags against the real iptables-legacy-restore 1.8.9, input by input.

Each scenario is a sequence of restore runs (flags + input); after every run the
exit code must be the same, and the tables both `-save`s print must be the same
text (comments dropped; counters compared only where `-c` is in play). The real
tool runs in its own namespace, bpfilter in another: the host is never touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_netns
from tests.kernel.dropin_lab import Twins, normalize_error, run_in
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

CORPUS = Path(__file__).resolve().parents[2] / "../shared/corpus/real"

BASE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:keep - [0:0]
:svc - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j svc
-A INPUT -s 10.1.0.0/16 -j keep
-A keep -j ACCEPT
-A svc -p tcp -m tcp --dport 22 -j ACCEPT
-A svc -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth9 -j MASQUERADE
COMMIT
"""

# kube-proxy / ufw style: commands inside --noflush input.
COMMANDS = """*filter
:svc - [0:0]
:KUBE-NEW - [0:0]
-A svc -p udp -m udp --dport 53 -j ACCEPT
-I INPUT 1 -i lo -j ACCEPT
-A INPUT -j KUBE-NEW
-R keep 1 -s 10.9.0.0/16 -j ACCEPT
-D INPUT -s 10.1.0.0/16 -j keep
-N extra
-A extra -p icmp -m icmp --icmp-type 8 -j DROP
-E extra extra2
-A KUBE-NEW -j extra2
-P FORWARD ACCEPT
-Z
COMMIT
"""

CLEANUP = """*filter
-D INPUT -j KUBE-NEW
-F KUBE-NEW
-X KUBE-NEW
-D INPUT 1
-F extra2
COMMIT
"""

ONLY_FILTER = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -j ACCEPT
COMMIT
"""

NAT_AND_FILTER = ONLY_FILTER + """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth8 -j MASQUERADE
COMMIT
"""

COUNTED = """*filter
:INPUT ACCEPT [11:1100]
:FORWARD DROP [3:300]
:OUTPUT ACCEPT [0:0]
[5:500] -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
[7:700] -A FORWARD -d 20.0.0.0/8 -j DROP
COMMIT
"""

Step = tuple[list[str], str]
SCENARIOS: dict[str, list[Step]] = {
    "replace-named-table-keep-others": [([], BASE), ([], ONLY_FILTER)],
    "noflush-keeps-chains-not-named": [([], BASE), (["-n"], ONLY_FILTER.replace(
        ":INPUT DROP", ":INPUT ACCEPT"))],
    "noflush-named-user-chain-is-flushed": [([], BASE), (["--noflush"], "*filter\n"
                                             ":svc - [0:0]\n-A svc -j DROP\nCOMMIT\n")],
    "noflush-commands-kube-proxy-style": [([], BASE), (["-n"], COMMANDS),
                                          (["-n"], CLEANUP)],
    "noflush-refused-command-changes-nothing": [([], BASE), (["-n"], COMMANDS.replace(
        "-D INPUT -s 10.1.0.0/16", "-D INPUT -s 10.77.0.0/16"))],
    "table-flag-only-that-table": [([], BASE), (["-T", "nat"], NAT_AND_FILTER)],
    "table-flag-long": [([], BASE), (["--table=filter"], NAT_AND_FILTER)],
    "test-flag-changes-nothing": [([], BASE), (["-t"], ONLY_FILTER), (["--test"], "*filter\n"
                                  "-A INPUT -s 1.2.3.999 -j DROP\nCOMMIT\n")],
    "wait-flags": [(["-w"], BASE), (["-w", "3"], ONLY_FILTER), (["-w", "2", "-W", "10"], BASE),
                   (["-W", "10"], ONLY_FILTER), (["-w5"], BASE), (["-w", "f"], BASE)],
    "verbose": [(["-v"], BASE)],
    "test-flag-checks-against-loaded": [([], BASE), (["-t", "-n"], CLEANUP.replace(
        "-D INPUT -j KUBE-NEW\n-F KUBE-NEW\n-X KUBE-NEW\n", "-D INPUT -s 10.1.0.0/16 -j keep\n"
        ).replace("-F extra2", "-F svc")), (["-t", "-n"], "*filter\n-D INPUT -j nosuch\nCOMMIT\n")],
    "bad-option": [(["-x"], BASE)],
    "second-restore-without-noflush-replaces": [([], BASE), ([], BASE.replace("22", "23"))],
}


@pytest.fixture
def twins(topology, tmp_path: Path):
    require_netns()
    ok, why = bpf_available()
    require_kernel(ok, why)
    topo = topology("flags")
    t = Twins(topo.netns("real"), topo.netns("bpf"), tmp_path)
    try:
        yield t
    finally:
        t.bpfilter("bpfilter", "flush")
        subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], capture_output=True)


def _check_step(twins: Twins, flags: list[str], text: str, where: str) -> None:
    real, ours = twins.restore(flags, text)
    assert ours.rc == real.rc, f"{where}: rc {ours.rc} != {real.rc}\n{ours.stderr}\n{real.stderr}"
    if real.rc != 0:
        # Same first line of the error (the line that says why), modulo program names.
        assert normalize_error(ours.stderr).splitlines()[:1] == \
            normalize_error(real.stderr).splitlines()[:1], (where, ours.stderr, real.stderr)
    real_t, ours_t = twins.saves(counters="-c" in flags)
    assert ours_t == real_t, where


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_flags_like_iptables_legacy_restore(twins: Twins, name: str) -> None:
    for i, (flags, text) in enumerate(SCENARIOS[name]):
        _check_step(twins, flags, text, f"{name} step {i} {flags}")


def test_counters_flag_like_iptables(twins: Twins) -> None:
    _check_step(twins, ["-c"], COUNTED, "-c")
    real_t, ours_t = twins.saves(counters=True)
    assert "[7:700] -A FORWARD -d 20.0.0.0/8 -j DROP" in ours_t["filter"]
    assert ours_t == real_t
    _check_step(twins, [], COUNTED, "without -c")
    assert twins.saves(counters=True)[1] == twins.saves(counters=True)[0]


def test_version_and_help_like_iptables(twins: Twins) -> None:
    real = run_in(twins.real_ns, ["iptables-legacy-restore", "-V"])
    ours = twins.bpfilter("bpfilter-restore", "-V")
    assert (ours.rc, normalize_error(ours.stdout)) == (real.rc, normalize_error(real.stdout))
    real = run_in(twins.real_ns, ["iptables-legacy-restore", "-h"])
    ours = twins.bpfilter("bpfilter-restore", "-h")
    assert ours.rc == real.rc == 0
    # iptables' usage text first, then bpfilter's own options (--hook, --iface).
    assert normalize_error(ours.stdout).startswith(normalize_error(real.stdout + real.stderr))
    assert "--hook" in ours.stdout


def test_missing_file_like_iptables(twins: Twins) -> None:
    real = run_in(twins.real_ns, ["iptables-legacy-restore", "/nonexistent/rules"])
    ours = twins.bpfilter("bpfilter-restore", "/nonexistent/rules")
    assert (ours.rc, ours.stderr.strip()) == (real.rc, real.stderr.strip())


def test_ufw_init_noflush_sequence(twins: Twins) -> None:
    """ufw's own `iptables-restore -n` blocks, fed one by one, as ufw does at boot."""
    path = CORPUS / "ufw-init-noflush-sequence-ipv4.txt"
    if not path.exists():
        pytest.skip(f"corpus not present: {path}")
    blocks, cur = [], []
    for line in path.read_text().splitlines():
        cur.append(line)
        if line == "COMMIT":
            blocks.append("\n".join(cur) + "\n")
            cur = []
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        _check_step(twins, ["-n"], block, f"ufw block {i}")


def test_counters_of_kept_rules_survive_like_iptables(twins: Twins) -> None:
    """libiptc keeps the counters of rules a restore does not touch; so must bpfilter."""
    steps: list[Step] = [
        (["-c"], COUNTED),
        (["-n"], "*filter\n:INPUT ACCEPT [0:0]\n-I FORWARD 1 -s 1.2.3.4 -j ACCEPT\nCOMMIT\n"),
        ([], NAT_AND_FILTER.split("COMMIT\n", 1)[1]),  # only nat: filter untouched
        (["-n", "-c"], "*filter\n[9:900] -A INPUT -p udp -j ACCEPT\nCOMMIT\n"),
        ([], ONLY_FILTER),  # replaced: counters start again
    ]
    for i, (flags, text) in enumerate(steps):
        real, ours = twins.restore(flags, text)
        assert (ours.rc, real.rc) == (0, 0), (i, ours.stderr, real.stderr)
        real_t, ours_t = twins.saves(counters=True)
        assert ours_t == real_t, f"step {i} {flags}"


BASE6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:svc - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j svc
-A INPUT -s 2001:db8::/32 -j ACCEPT
-A svc -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""
COMMANDS6 = """*filter
:svc - [0:0]
-I INPUT 1 -i lo -j ACCEPT
-D INPUT -s 2001:db8::/32 -j ACCEPT
-N extra
-A extra -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP
-A INPUT -j extra
-P FORWARD ACCEPT
COMMIT
"""


@pytest.fixture
def twins6(topology, tmp_path: Path):
    require_netns()
    ok, why = bpf_available()
    require_kernel(ok, why)
    topo = topology("flags6")
    t = Twins(topo.netns("real"), topo.netns("bpf"), tmp_path, v6=True)
    try:
        yield t
    finally:
        t.bpfilter("bpfilter", "flush", "-6")
        subprocess.run(["umount", "-l", str(tmp_path / "bpffs")], capture_output=True)


def test_ipv6_noflush_commands_like_ip6tables(twins6: Twins) -> None:
    for i, (flags, text) in enumerate([([], BASE6), (["-n"], COMMANDS6), (["-T", "filter"], BASE6),
                                       (["-n"], "*filter\n-D INPUT -s 2001:db8::/32 -j ACCEPT\n"
                                                "COMMIT\n")]):
        _check_step(twins6, flags, text, f"ipv6 step {i} {flags}")
