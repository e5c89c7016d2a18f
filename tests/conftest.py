"""Shared fixtures: throw-away network topologies, a private bpffs, kernel gating.

Why here: every kernel and differential test needs the same guarantees — work
only in namespaces the test made, always delete them, keep bpffs pins inside
the test's own temp directory — so they are written once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kernel_required import require_kernel

REPO = Path(__file__).resolve().parents[1]
BPF_FS_MAGIC = 0xCAFE4A11


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bpfilter_cli: needs the `bpfilter-restore --hook` command (diff suite)")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove namespaces that killed earlier runs left behind (their pid is gone)."""
    if os.geteuid() == 0 and shutil.which("ip"):
        from bpfilter.verify.netns import cleanup_stale

        cleanup_stale()


def netns_supported() -> tuple[bool, str]:
    """(ok, why): root and a working ``ip netns``."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if not shutil.which("ip"):
        return False, "iproute2 `ip` not installed"
    return True, ""


def require_netns() -> None:
    ok, why = netns_supported()
    require_kernel(ok, why)


@pytest.fixture
def topology() -> Iterator[Callable[..., object]]:
    """Factory: ``topology("name")`` → a `Topology`, deleted (namespaces, veths) at teardown."""
    require_netns()
    from bpfilter.verify.netns import Topology

    made: list[Topology] = []

    def make(name: str = "t") -> Topology:
        topo = Topology(name)
        made.append(topo)
        return topo

    try:
        yield make
    finally:
        for topo in made:
            topo.close()


@pytest.fixture
def router_lab(topology: Callable[..., object]) -> object:
    """The sender → router → sink lab of `bpfilter.verify.router`, torn down afterwards."""
    from bpfilter.verify.router import build_router_lab

    return build_router_lab(topology("lab"))


def is_bpffs(path: Path) -> bool:
    try:
        out = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return False
    return int(out, 16) == BPF_FS_MAGIC


def mount_bpffs(path: Path) -> None:
    """Mount a bpffs at ``path`` from this (the host's) mount namespace.

    Mounted here it is visible to every later ``ip netns exec`` (which copies
    the host's mounts); a bpffs mounted inside ``ip netns exec`` would vanish
    with that command.
    """
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "bpf", "bpf", str(path)], check=True, capture_output=True)


def unmount_bpffs(path: Path) -> None:
    """Unmount (dropping every pin, so pinned links and programs go away too)."""
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.fixture
def bpffs_dir(tmp_path: Path) -> Iterator[Path]:
    """A private bpffs under the test's tmp dir, unmounted at teardown."""
    require_netns()
    path = tmp_path / "bpffs"
    try:
        mount_bpffs(path)
    except subprocess.CalledProcessError as exc:
        require_kernel(False, f"cannot mount bpffs: {exc.stderr!r}")
    try:
        yield path
    finally:
        unmount_bpffs(path)
