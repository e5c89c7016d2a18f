"""bpffs mounts: pins (maps, programs, links) need a BPF filesystem to live in.

Why: a fresh machine has no bpffs at /sys/fs/bpf, and ``ip netns exec`` hides the one at
/sys/fs/bpf, so callers pick a path (e.g. under /run) and we mount one there when missing.
"""

from __future__ import annotations

import ctypes
import os

BPF_FS_MAGIC = 0xCAFE4A11
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


def fs_magic(path: str | os.PathLike[str]) -> int:
    """statfs(2) f_type of the filesystem holding ``path``."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs {path}: {os.strerror(err)}")
    # f_type is the first member, a long (__fsword_t) on 64-bit Linux
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def is_bpffs(path: str | os.PathLike[str]) -> bool:
    return os.path.isdir(path) and fs_magic(path) == BPF_FS_MAGIC


def ensure_bpffs(path: str | os.PathLike[str]) -> bool:
    """Make ``path`` a bpffs (creating the directory); True if we mounted it now."""
    os.makedirs(path, exist_ok=True)
    if is_bpffs(path):
        return False
    if _libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount bpffs at {path}: {os.strerror(err)}")
    return True


def unmount_bpffs(path: str | os.PathLike[str]) -> None:
    """Unmount the bpffs at ``path`` (lazily if busy); pins in it go away with it."""
    if not is_bpffs(path):
        return
    if _libc.umount2(os.fsencode(path), 0) != 0:
        err = ctypes.get_errno()
        if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
