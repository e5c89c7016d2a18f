"""nat/mangle/raw extensions through the real restore parser and printer (end to end).

Checks what only the whole parser can: option abbreviations (``--to``), the
optional rate argument of ``-m rateest``, and the kernel's COMMIT-time hook
check for rules in user chains (``check_hooks`` with the hooks that reach the
chain).
"""

from __future__ import annotations

import pytest

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from bpfilter.ir import Family

NAT_HEAD = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:USER - [0:0]
"""


def _printed(text: str, table: str, family: Family = Family.IPV4) -> list[str]:
    rs = parse_restore(text, family=family)
    t = rs.table(table)
    assert t is not None
    return [print_rule(r, c.name, family, table=table) for c in t.chains for r in c.rules]


def test_nat_abbreviations_and_canonical_print():
    text = NAT_HEAD + (
        "-A PREROUTING -p tcp -j DNAT --to 10.0.0.1:80\n"
        "-A PREROUTING -p tcp -j REDIRECT --to 8080\n"
        "-A POSTROUTING -o eth0 -j SNAT --to 192.0.2.1 --persistent --random\n"
        "COMMIT\n"
    )
    assert _printed(text, "nat") == [
        "-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:80",
        "-A PREROUTING -p tcp -j REDIRECT --to-ports 8080",
        "-A POSTROUTING -o eth0 -j SNAT --to-source 192.0.2.1 --random --persistent",
    ]


@pytest.mark.parametrize(
    "jump_from,ok",
    [("PREROUTING", True), ("OUTPUT", True), ("POSTROUTING", False), ("INPUT", False)],
)
def test_user_chain_dnat_checked_against_reaching_hooks(jump_from, ok):
    text = NAT_HEAD + (
        "-A USER -j DNAT --to-destination 10.0.0.1\n"
        f"-A {jump_from} -j USER\n"
        "COMMIT\n"
    )
    if ok:
        assert "-A USER -j DNAT --to-destination 10.0.0.1" in _printed(text, "nat")
    else:
        with pytest.raises(RestoreError, match="only usable from PREROUTING/OUTPUT"):
            parse_restore(text, family=Family.IPV4)


def test_unreachable_user_chain_is_not_checked():
    text = NAT_HEAD + "-A USER -j MASQUERADE\nCOMMIT\n"
    assert _printed(text, "nat") == ["-A USER -j MASQUERADE"]


def test_rateest_optional_rate_argument():
    text = (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -j RATEEST --rateest-name RE1 --rateest-interval 250ms --rateest-ewmalog 0.5s\n"
        "-A INPUT -j RATEEST --rateest-name RE2 --rateest-interval 250ms --rateest-ewmalog 0.5s\n"
        "-A INPUT -m rateest --rateest1 RE1 --rateest-lt --rateest-bps --rateest2 RE2\n"
        "-A INPUT -m rateest --rateest RE1 --rateest-gt --rateest-bps 5kbit\n"
        "COMMIT\n"
    )
    assert _printed(text, "filter") == [
        "-A INPUT -j RATEEST --rateest-name RE1 --rateest-interval 250.0ms "
        "--rateest-ewmalog 500.0ms",
        "-A INPUT -j RATEEST --rateest-name RE2 --rateest-interval 250.0ms "
        "--rateest-ewmalog 500.0ms",
        "-A INPUT -m rateest --rateest1 RE1 --rateest-lt --rateest-bps --rateest2 RE2",
        "-A INPUT -m rateest --rateest RE1 --rateest-gt --rateest-bps 5000bit",
    ]


def test_raw_notrack_and_ct():
    text = (
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp --dport 80 -j NOTRACK\n"
        "-A OUTPUT -p tcp -j CT --helper ftp --zone-orig 3\n"
        "COMMIT\n"
    )
    assert _printed(text, "raw") == [
        "-A PREROUTING -p tcp -m tcp --dport 80 -j NOTRACK",
        "-A OUTPUT -p tcp -j CT --helper ftp --zone-orig 3",
    ]


def test_wrong_table_refused_with_line():
    text = (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -j NOTRACK\nCOMMIT\n"
    )
    with pytest.raises(RestoreError) as exc:
        parse_restore(text, family=Family.IPV4)
    assert exc.value.line == 5
    assert "only valid in raw table" in str(exc.value)
