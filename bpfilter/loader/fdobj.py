"""One bpf object held by one fd: the pin/close/context-manager code that maps, programs
and bpf_links would otherwise each repeat."""

from __future__ import annotations

import os
from typing import Self

from . import syscall as sc


class FdObject:
    """Mixin for a handle owning ``self.fd``: `pin` it in bpffs, `close` it exactly once
    (also on `with` exit and garbage collection, so a dropped handle never leaks the fd)."""

    fd: int

    def pin(self, path: str | os.PathLike[str]) -> None:
        sc.obj_pin(self.fd, path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
