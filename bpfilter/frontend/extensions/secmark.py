"""SELinux packet labelling: SECMARK and CONNSECMARK (libxt_SECMARK.c, libxt_CONNSECMARK.c).

Values: SECMARK ``selctx`` is the security context string (mandatory, cut to
255 characters like the kernel structure). CONNSECMARK has exactly one of the
flags ``save`` (packet label → connection) or ``restore`` (connection → packet).

Kernel: both only in the mangle or security table. Whether the context is
valid is SELinux's decision at load time, which we cannot check.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import KernelPlaced
from bpfilter.ir import Option

SECCTX_MAX = 256


def _selctx(args: Sequence[str], ctx: ParseContext) -> str:
    return args[0][: SECCTX_MAX - 1]


@register
class SECMARK(KernelPlaced):
    name = "SECMARK"
    kind = "target"
    valid_tables = ("mangle", "security")
    options = (OptionSpec("selctx", _selctx),)

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.must(found, "selctx")
        return self.ordered(found.values())


@register
class CONNSECMARK(KernelPlaced):
    name = "CONNSECMARK"
    kind = "target"
    valid_tables = ("mangle", "security")
    options = (OptionSpec("save"), OptionSpec("restore"))

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.exclusive(found, "save", "restore")
        if not found:
            raise ExtensionError("CONNSECMARK target: parameter required")
        return self.ordered(found.values())
