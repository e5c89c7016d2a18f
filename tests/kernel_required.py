"""Kernel-feature gate for tests: fail in CI, skip elsewhere.

Why: a kernel test that silently skips in CI proves nothing, so when CI=true a missing
feature (no root, no bpf(), old kernel) is a failure; on a developer box it is a skip.
Use ``require_kernel(ok, why)`` for a specific feature, or the ``kernel`` fixture for
"root and a working bpf() syscall".
"""

from __future__ import annotations

import functools
import os

import pytest


def require_kernel(feature_ok: bool, why: str) -> None:
    """Skip (or fail when CI=true) unless ``feature_ok``."""
    if feature_ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and kernel feature missing: {why}")
    pytest.skip(why)


@functools.cache
def bpf_available() -> tuple[bool, str]:
    """(ok, reason): root and a bpf() that can create a map."""
    if os.geteuid() != 0:
        return False, "needs root"
    try:
        from bpfilter.loader import syscall as sc

        fd = sc.map_create(sc.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="probe")
        os.close(fd)
    except OSError as e:  # BpfError is an OSError
        return False, f"bpf() unusable: {e}"
    return True, ""


@pytest.fixture
def kernel() -> None:
    """Gate a test on root + bpf(); import it into the test module to use it."""
    ok, why = bpf_available()
    require_kernel(ok, why)
