"""iprange, length and comment matches on every flavor, plain and negated."""

from __future__ import annotations

import pytest

from tests.kernel._matchers_lab import (
    FLAVORS,
    Lab,
    check_rule,
    lab,  # noqa: F401  (fixture)
    need,
    tot_len,
    udp,
)

pytestmark = pytest.mark.kernel

PKT = udp()  # 172.16.5.9 -> 192.168.7.1
N = tot_len(PKT)

IPRANGE = [
    ("src", "-m iprange --src-range 172.16.5.1-172.16.5.9", "match"),
    ("src-miss", "-m iprange --src-range 172.16.5.10-172.16.6.0", "nomatch"),
    ("src-neg", "-m iprange ! --src-range 172.16.5.10-172.16.6.0", "match"),
    ("src-neg-miss", "-m iprange ! --src-range 172.16.0.0-172.17.0.0", "nomatch"),
    ("dst", "-m iprange --dst-range 192.168.7.1-192.168.7.1", "match"),
    ("dst-neg", "-m iprange ! --dst-range 192.168.7.0-192.168.7.255", "nomatch"),
    ("both", "-m iprange --src-range 172.0.0.0-173.0.0.0 --dst-range 192.0.0.0-193.0.0.0",
     "match"),
    ("reversed-never", "-m iprange --src-range 172.16.5.10-172.16.5.1", "nomatch"),
]

LENGTH = [
    ("exact", f"-m length --length {N}", "match"),
    ("range", f"-m length --length {N - 1}:{N + 1}", "match"),
    ("miss", f"-m length --length {N + 1}:65535", "nomatch"),
    ("neg", f"-m length ! --length {N + 1}:65535", "match"),
    ("neg-miss", f"-m length ! --length 0:{N}", "nomatch"),
]

COMMENT = [
    ("comment", '-m comment --comment "any text"', "match"),
    ("comment-with-other", '-p udp -m comment --comment x', "match"),
    ("comment-other-miss", '-p tcp -m comment --comment x', "nomatch"),
]


def _params(cases: list) -> object:
    return pytest.mark.parametrize("case", cases, ids=[c[0] for c in cases])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(IPRANGE)
def test_iprange(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("iprange")
    check_rule(lab, flavor, case[1], PKT, case[2])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(LENGTH)
def test_length(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("length")
    check_rule(lab, flavor, case[1], PKT, case[2])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(COMMENT)
def test_comment(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("comment")
    check_rule(lab, flavor, case[1], PKT, case[2])
