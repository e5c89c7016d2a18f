"""Contents of the lookup maps a compiled program needs, and how to write them fast.

Why here: codegen decides the bytes (it owns the layouts the program reads); the
pipeline and test harness only create the maps and call `fill_map` before the program
is attached, so a program never runs with an empty lookup table.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

from bpfilter.loader import syscall as sc
from bpfilter.loader.maps import Map, MapSpec

BPF_MAP_UPDATE_BATCH = 26


@dataclass(frozen=True)
class MapContents:
    """Values of an ARRAY map: key i (u32) holds values[i*value_size:(i+1)*value_size]."""

    name: str
    value_size: int
    values: bytes = b""
    capacity: int = 0  # max_entries of the map (room for in-place updates); 0: count

    @property
    def count(self) -> int:
        return len(self.values) // self.value_size

    def spec(self, headroom: float = 1.0) -> MapSpec:
        """An ARRAY map spec big enough for the values (times `headroom`, for in-place
        updates that grow the table)."""
        n = max(1, self.capacity, int(self.count * headroom))
        return MapSpec(self.name, sc.BPF_MAP_TYPE_ARRAY, 4, self.value_size, n)

    def keys(self, start: int = 0, stop: int | None = None) -> bytes:
        stop = self.count if stop is None else stop
        return struct.pack(f"<{stop - start}I", *range(start, stop))


class _BatchAttr(ctypes.Structure):
    _fields_ = [("in_batch", ctypes.c_uint64), ("out_batch", ctypes.c_uint64),
                ("keys", ctypes.c_uint64), ("values", ctypes.c_uint64),
                ("count", ctypes.c_uint32), ("map_fd", ctypes.c_uint32),
                ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


def update_batch(m: Map, keys: bytes, values: bytes) -> None:
    """BPF_MAP_UPDATE_BATCH: many elements in one syscall (each element is written
    atomically as by map_update_elem; the batch as a whole is not)."""
    n = len(keys) // m.spec.key_size
    if n == 0:
        return
    kbuf = ctypes.create_string_buffer(keys, len(keys))
    vbuf = ctypes.create_string_buffer(values, len(values))
    attr = _BatchAttr(keys=ctypes.addressof(kbuf), values=ctypes.addressof(vbuf), count=n,
                      map_fd=m.fd)
    try:
        sc.bpf(BPF_MAP_UPDATE_BATCH, attr, f"batch update map {m.spec.name}")
    except sc.BpfError:  # kernels without batch ops for this map type: one by one
        ks, vs = m.spec.key_size, m.spec.value_size
        for i in range(n):
            m.update(keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs])


def fill_map(m: Map, contents: MapContents) -> None:
    """Write all values of `contents` into the (new) map `m`."""
    update_batch(m, contents.keys(), contents.values)


def create_filled(contents: MapContents, headroom: float = 1.0) -> Map:
    m = Map.create(contents.spec(headroom))
    try:
        fill_map(m, contents)
    except BaseException:
        m.close()
        raise
    return m
