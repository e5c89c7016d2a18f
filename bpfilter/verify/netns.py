"""Throw-away network namespaces, veth pairs and ways to run code inside them.

Every kernel-touching test and the differential harness work only inside
namespaces made here, so the host's own interfaces and firewall are never
touched.  Names carry the creating process id (``bpft-<pid>-``) so parallel
runs never collide, and `cleanup_stale` can remove what a killed run left.

Code runs inside a namespace in two ways:
- `call_in_netns` runs a callable in a fresh *thread* that ``setns()`` into the
  namespace (a netns is per thread on Linux).  Sockets, netlink handles and
  bpf links created there stay bound to that namespace after the thread ends,
  which is how traffic capture and attach tests open kernel objects "inside".
- `fork_in_netns` runs a callable in a forked child, for code that changes
  process-wide state; `Topology.exec` runs a command via ``ip netns exec``.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pickle
import socket
import subprocess
import threading
import traceback
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = Path("/run/netns")
NAME_PREFIX = "bpft-"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_counter = itertools.count(1)


class NetnsError(RuntimeError):
    """A namespace operation failed; carries the command and its stderr."""


def unique_prefix() -> str:
    """Per-process prefix for every name this run creates."""
    return f"{NAME_PREFIX}{os.getpid()}-"


def unique_name(role: str) -> str:
    """A namespace name unique to this process: ``bpft-<pid>-<n>-<role>``."""
    return f"{unique_prefix()}{next(_counter)}-{role}"


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip`` (optionally ``ip -n NS``) and return stdout; raise NetnsError on failure."""
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def netns_add(name: str) -> None:
    ip("netns", "add", name)


def netns_del(name: str) -> None:
    """Delete a namespace; deleting also destroys the veth ends that live in it."""
    ip("netns", "del", name, check=False)


def netns_exists(name: str) -> bool:
    return (NETNS_RUN_DIR / name).exists()


def netns_list(prefix: str = NAME_PREFIX) -> list[str]:
    if not NETNS_RUN_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_RUN_DIR.iterdir() if p.name.startswith(prefix))


def cleanup_stale(prefix: str = NAME_PREFIX) -> list[str]:
    """Delete namespaces left by runs whose process is gone (killed with -9, crashed)."""
    removed = []
    for name in netns_list(prefix):
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not Path(f"/proc/{pid_text}").exists():
            netns_del(name)
            removed.append(name)
    return removed


def _enter(name: str) -> None:
    fd = os.open(NETNS_RUN_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in_netns(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a new thread inside netns ``name`` and return its result.

    The calling thread never changes namespace, so an exception or Ctrl-C can
    not leave the test process half inside a namespace.
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            _enter(name)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def fork_in_netns(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a forked child inside netns ``name``; the result comes back pickled."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        try:
            _enter(name)
            payload = pickle.dumps((True, fn(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            tb = traceback.format_exc(limit=-8)
            payload = pickle.dumps((False, NetnsError(f"{type(exc).__name__}: {exc}\n{tb}")))
        with os.fdopen(wfd, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    if not data:
        raise NetnsError(f"child in {name} died without a result")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


def exec_in_netns(
    name: str,
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a command with ``ip netns exec`` (a fresh process, like a user would)."""
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(
        ["ip", "netns", "exec", name, *argv],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise NetnsError(
            f"[{name}] {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def set_sysctl(name: str, key: str, value: str | int) -> None:
    """Write a sysctl inside netns ``name`` (net.* sysctls resolve by the writer's netns)."""
    call_in_netns(name, sysctl_path(key).write_text, f"{value}\n")


def get_sysctl(name: str, key: str) -> str:
    return call_in_netns(name, sysctl_path(key).read_text).strip()


class Topology:
    """A set of namespaces and veth pairs that is always torn down.

    Use as a context manager; cleanup also runs on garbage collection and at
    interpreter exit for a topology that was never closed (e.g. one made
    outside a ``with`` when KeyboardInterrupt hit).  Namespace names are returned by `netns`
    and are unique per process.
    """

    def __init__(self, name: str = "topo") -> None:
        self.name = name
        self.namespaces: dict[str, str] = {}
        # Runs at close(), garbage collection or interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _delete_all, self.namespaces)

    # lifecycle -------------------------------------------------------------
    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete every namespace (and with them every veth) this topology made."""
        self._finalizer()

    # building --------------------------------------------------------------
    def netns(self, role: str) -> str:
        """Create (once) the namespace for ``role`` and return its full name."""
        if role not in self.namespaces:
            full = unique_name(f"{self.name}-{role}")
            netns_add(full)
            self.namespaces[role] = full
            ip("link", "set", "lo", "up", netns=full)
        return self.namespaces[role]

    def ns(self, role: str) -> str:
        """Full name of an existing role's namespace."""
        return self.namespaces[role]

    def veth(self, role_a: str, dev_a: str, role_b: str, dev_b: str, up: bool = True) -> None:
        """Create a veth pair with one end in each namespace (never in the host's)."""
        ns_a, ns_b = self.netns(role_a), self.netns(role_b)
        ip("link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
           "netns", ns_b)
        if up:
            ip("link", "set", dev_a, "up", netns=ns_a)
            ip("link", "set", dev_b, "up", netns=ns_b)

    def addr(self, role: str, dev: str, cidr: str) -> None:
        extra = ["nodad"] if ":" in cidr else []
        ip("addr", "add", cidr, "dev", dev, *extra, netns=self.ns(role))

    def route(self, role: str, *args: str) -> None:
        """``ip route add ARGS`` inside the role's namespace."""
        ip("route", "add", *args, netns=self.ns(role))

    def neigh(self, role: str, addr: str, mac: str, dev: str) -> None:
        """A permanent neighbour entry, so peers need no address of their own."""
        ip("neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent",
           netns=self.ns(role))

    def sysctl(self, role: str, key: str, value: str | int) -> None:
        set_sysctl(self.ns(role), key, value)

    # querying / running ----------------------------------------------------
    def ifindex(self, role: str, dev: str) -> int:
        # /sys shows the host's devices; the ioctl behind if_nametoindex uses the thread's netns.
        return call_in_netns(self.ns(role), socket.if_nametoindex, dev)

    def mac(self, role: str, dev: str) -> str:
        text = ip("-o", "link", "show", "dev", dev, netns=self.ns(role))
        return text.split("link/ether", 1)[1].split()[0]

    def exec(self, role: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        return exec_in_netns(self.ns(role), argv, **kwargs)

    def call(self, role: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return call_in_netns(self.ns(role), fn, *args, **kwargs)

    def fork(self, role: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fork_in_netns(self.ns(role), fn, *args, **kwargs)


def _delete_all(namespaces: dict[str, str]) -> None:
    while namespaces:
        _, full = namespaces.popitem()
        netns_del(full)
