"""``-m comment --comment TEXT`` (libxt_comment): no effect on packets.

Value: the comment ``str`` (unquoted); at most 255 bytes; mandatory.
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
from bpfilter.frontend.lexer import save_string
from bpfilter.ir import Option


def _comment(args: Sequence[str], ctx: ParseContext) -> str:
    if len(args[0].encode()) > 255:
        raise ExtensionError('comment: option "--comment" must be 255 characters or less')
    return args[0]


@register
class CommentMatch(Extension):
    """Carries a note in the rule."""

    name = "comment"
    kind = "match"
    options = (OptionSpec("comment", _comment),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('comment: option "--comment" must be specified')
        return tuple(options)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(f"--comment {save_string(o.value)}" for o in options)
