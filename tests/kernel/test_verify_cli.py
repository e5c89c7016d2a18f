"""`bpfilter verify FILE` on every example ruleset in rules/: zero mismatches, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

RULES = sorted((Path(__file__).resolve().parents[2] / "rules").glob("*.v4"))
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.name)
def test_verify_examples(rules: Path) -> None:
    ok, why = bpf_available()
    require_kernel(ok, why)
    r = subprocess.run([str(BIN / "bpfilter"), "verify", str(rules), "--packets", "400"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same verdict" in r.stdout


def test_verify_refuses_bad_input_with_line() -> None:
    r = subprocess.run([str(BIN / "bpfilter"), "verify", "/dev/stdin"], input="*filter\n-A\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "line" in r.stderr.lower(), r.stderr
