"""Group-C edge cases against what iptables-legacy 1.8.9 did with them (ext_c_ref189).

Accepted rules must print exactly as 1.8.9's save did; refused ones must raise
ExtensionError. Known, deliberate differences are listed with the reason.
"""

from __future__ import annotations

import pytest

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.ir import Family
from tests.unit.ext_c_driver import MissingExtension, run_rule
from tests.unit.ext_c_ref189 import CASES


@pytest.mark.parametrize("ver,table,chain,rule,saved", CASES,
                         ids=[f"{c[0]}:{c[2]}:{c[3]}" for c in CASES])
def test_matches_iptables_189(ver, table, chain, rule, saved):
    fam = Family.IPV6 if ver == 6 else Family.IPV4
    try:
        if saved is None:
            with pytest.raises(ExtensionError):
                run_rule(rule, fam, table, chain)
        else:
            assert run_rule(rule, fam, table, chain).text == saved
    except MissingExtension as exc:
        pytest.skip(f"extension {exc} not registered")
