"""``-m nfacct --nfacct-name NAME`` (xt_nfacct): count into an extended accounting object.

Value: ``nfacct-name`` is a str (cut to 31 bytes like 1.8.9, no newline). It always
matches; the object must exist in the kernel when the rule is committed
(``nfacct add NAME``), which only the kernel can check.
1.8.9 prints it with two spaces: ``--nfacct-name  NAME``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import by_name, must_have
from bpfilter.frontend.extensions.types import put_string, save_string
from bpfilter.ir import Option

NFACCT_NAME_MAX = 32


def _name(args: Sequence[str], ctx: ParseContext) -> str:
    s = put_string(args[0], NFACCT_NAME_MAX)
    if "\n" in s:
        raise ExtensionError("Newlines not allowed in --nfacct-name")
    return s


@register
class NfacctMatch(Extension):
    """Accounting object match (always true; counts as a side effect)."""

    name = "nfacct"
    kind = "match"
    options = (OptionSpec("nfacct-name", _name),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        must_have(by_name(options), "nfacct-name", "nfacct")
        return super().finalize(options, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(f"--nfacct-name  {save_string(o.value)}" for o in options)
