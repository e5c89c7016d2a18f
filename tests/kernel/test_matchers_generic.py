"""Generic rule fields (-s -d -p -i -o -f) on every flavor, plain and negated, through
BPF_PROG_TEST_RUN: verdict and counters."""

from __future__ import annotations

import pytest

from tests.kernel._matchers_lab import (
    FLAVORS,
    FWD_DST,
    Lab,
    check_rule,
    lab,  # noqa: F401  (fixture)
    tcp,
    udp,
)

pytestmark = pytest.mark.kernel

CASES = [
    ("src", "-s 172.16.0.0/12", udp(), "match"),
    ("src-miss", "-s 10.0.0.0/8", udp(), "nomatch"),
    ("src-neg", "! -s 10.0.0.0/8", udp(), "match"),
    ("src-neg-miss", "! -s 172.16.0.0/12", udp(), "nomatch"),
    ("src-noncontig", "-s 172.0.0.9/255.0.0.255", udp(), "match"),
    ("src-noncontig-miss", "-s 172.0.0.8/255.0.0.255", udp(), "nomatch"),
    ("src-host", "-s 172.16.5.9/32", udp(), "match"),
    ("dst", "-d 192.168.7.1/32", udp(), "match"),
    ("dst-neg", "! -d 192.168.7.1/32", udp(), "nomatch"),
    ("proto", "-p udp", udp(), "match"),
    ("proto-miss", "-p udp", tcp(), "nomatch"),
    ("proto-neg", "! -p udp", tcp(), "match"),
    ("proto-neg-miss", "! -p udp", udp(), "nomatch"),
    ("proto-num", "-p 6", tcp(), "match"),
    ("proto-all", "-p all", tcp(), "match"),
    # the nf test run has no input device (see Lab.names): -i NAME never matches there
    ("in", "-i {IN}", udp(), "match", "nomatch"),
    ("in-miss", "-i nope0", udp(), "nomatch"),
    ("in-prefix", "-i {INPFX}+", udp(), "match", "nomatch"),
    ("in-prefix-miss", "-i zz+", udp(), "nomatch"),
    ("in-neg", "! -i {IN}", udp(), "nomatch", "match"),
    ("in-neg-miss", "! -i nope0", udp(), "match"),
    ("in-exact-not-prefix", "-i {IN}0", udp(), "nomatch"),
    ("in-any", "-i +", udp(), "match"),
    ("frag", "-f", udp(frag=16), "match"),
    ("frag-miss", "-f", udp(), "nomatch"),
    ("frag-first-is-not", "-f", udp(mf=True), "nomatch"),
    ("frag-neg", "! -f", udp(), "match"),
    ("frag-neg-miss", "! -f", udp(frag=16), "nomatch"),
]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_generic(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    _, spec, datagram, outcome, *nf = case
    check_rule(lab, flavor, spec, datagram, outcome, nf_outcome=nf[0] if nf else None)


FWD_CASES = [
    ("out", "-o {OUT}", "match"),
    ("out-miss", "-o nope0", "nomatch"),
    ("out-neg", "! -o {OUT}", "nomatch"),
    ("out-prefix", "-o {INPFX}+", "match"),
    ("in-and-out", "-i {IN} -o {OUT}", "match", "nomatch"),
]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("case", FWD_CASES, ids=[c[0] for c in FWD_CASES])
def test_forward_out_iface(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    _, spec, outcome, *nf = case
    check_rule(lab, flavor, spec, udp(dst=FWD_DST), outcome, chain="FORWARD",
               nf_outcome=nf[0] if nf else None)
