"""BPF maps: a pure MapSpec (what to create) and a live Map (an open fd).

Why split: codegen decides which maps a program needs without touching the kernel; only
the loader turns specs into fds. Keys and values are raw bytes — callers pack them with
``struct`` in the layout their program reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import syscall as sc
from .fdobj import FdObject


@dataclass(frozen=True)
class MapSpec:
    """What a map must be; ``name`` is also the symbol the program's IR refers to."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    #: global-data maps (elf.py makes them for .rodata/.data/.bss): the value of key 0 at
    #: creation; ``frozen`` maps are then made read-only for user space (BPF_MAP_FREEZE).
    initial: bytes | None = field(default=None, compare=False, repr=False)
    frozen: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.map_type == sc.BPF_MAP_TYPE_LPM_TRIE and not self.flags & sc.BPF_F_NO_PREALLOC:
            # the kernel refuses LPM tries without it; set it rather than fail at load
            object.__setattr__(self, "flags", self.flags | sc.BPF_F_NO_PREALLOC)

    @property
    def percpu(self) -> bool:
        return self.map_type in sc.PERCPU_MAP_TYPES


def _round8(n: int) -> int:
    return (n + 7) & ~7


class Map(FdObject):
    """An open BPF map. Owns its fd: close() it, or use it as a context manager."""

    def __init__(self, fd: int, spec: MapSpec) -> None:
        self.fd = fd
        self.spec = spec

    @classmethod
    def create(cls, spec: MapSpec) -> Map:
        fd = sc.map_create(spec.map_type, spec.key_size, spec.value_size, spec.max_entries,
                           spec.flags, spec.name)
        m = cls(fd, spec)
        if spec.initial is not None:
            try:
                sc.map_update_elem(fd, bytes(spec.key_size), spec.initial)
                if spec.frozen:
                    sc.map_freeze(fd)
            except BaseException:
                m.close()
                raise
        return m

    @classmethod
    def from_fd(cls, fd: int) -> Map:
        """Wrap an fd we own (e.g. from map_get_fd_by_id); the spec is read back."""
        info = sc.map_info(fd)
        spec = MapSpec(info.name, info.type, info.key_size, info.value_size,
                       info.max_entries, info.map_flags)
        return cls(fd, spec)

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Map:
        return cls.from_fd(sc.obj_get(path))

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        return cls.from_fd(sc.map_get_fd_by_id(map_id))

    @property
    def info(self) -> sc.MapInfo:
        return sc.map_info(self.fd)

    def _check_key(self, key: bytes) -> None:
        if len(key) != self.spec.key_size:
            raise ValueError(f"map {self.spec.name}: key is {len(key)} bytes, "
                             f"expected {self.spec.key_size}")

    def update(self, key: bytes, value: bytes | list[bytes], flags: int = sc.BPF_ANY) -> None:
        """Set ``key``. For per-CPU maps ``value`` is either one value (copied to every CPU)
        or a list with one value per possible CPU."""
        self._check_key(key)
        vs = self.spec.value_size
        if self.spec.percpu:
            n = sc.possible_cpus()
            values = value if isinstance(value, list) else [value] * n
            if len(values) != n:
                raise ValueError(f"map {self.spec.name}: need {n} per-CPU values")
            for v in values:
                if len(v) != vs:
                    raise ValueError(f"map {self.spec.name}: value is {len(v)} bytes, "
                                     f"expected {vs}")
            raw = b"".join(v.ljust(_round8(vs), b"\0") for v in values)
        else:
            if not isinstance(value, bytes | bytearray) or len(value) != vs:
                raise ValueError(f"map {self.spec.name}: value must be {vs} bytes")
            raw = bytes(value)
        sc.map_update_elem(self.fd, key, raw, flags)

    def lookup(self, key: bytes) -> bytes | None:
        """The value, or None if absent. Per-CPU maps: use :meth:`lookup_percpu`."""
        self._check_key(key)
        if self.spec.percpu:
            raise TypeError(f"map {self.spec.name} is per-CPU: use lookup_percpu()")
        return sc.map_lookup_elem(self.fd, key, self.spec.value_size)

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """One value per possible CPU (each value_size bytes), or None if absent."""
        self._check_key(key)
        n, stride = sc.possible_cpus(), _round8(self.spec.value_size)
        raw = sc.map_lookup_elem(self.fd, key, stride * n)
        if raw is None:
            return None
        return [raw[i * stride: i * stride + self.spec.value_size] for i in range(n)]

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False when it was not there."""
        self._check_key(key)
        return sc.map_delete_elem(self.fd, key)

    def keys(self) -> Iterator[bytes]:
        """Iterate keys (kernel order). Deleting the current key while iterating is safe
        for hash maps: iteration restarts from the kernel's answer for the next key."""
        key: bytes | None = None
        while True:
            key = sc.map_get_next_key(self.fd, key, self.spec.key_size)
            if key is None:
                return
            yield key

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def __repr__(self) -> str:
        return f"Map({self.spec.name!r}, fd={self.fd})"
