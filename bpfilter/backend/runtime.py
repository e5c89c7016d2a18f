"""Byte layouts the pipeline needs to talk to a loaded program's maps.

Why here: codegen defines these layouts; the pipeline should not re-derive them.
"""

from __future__ import annotations

import struct

from bpfilter.backend.packet import IFNAMSIZ


def ifname_entry(ifindex: int, name: str) -> tuple[bytes, bytes]:
    """(key, value) for the "ifnames" map: u32 ifindex → zero-padded char[16]."""
    raw = name.encode()
    if len(raw) >= IFNAMSIZ:
        raise ValueError(f"interface name too long: {name!r}")
    return struct.pack("<I", ifindex), raw.ljust(IFNAMSIZ, b"\0")


def counter_values(per_cpu: list[bytes]) -> tuple[int, int]:
    """Sum one "counters" slot over CPUs → (packets, bytes)."""
    packets = nbytes = 0
    for v in per_cpu:
        p, b = struct.unpack_from("<QQ", v)
        packets += p
        nbytes += b
    return packets, nbytes
