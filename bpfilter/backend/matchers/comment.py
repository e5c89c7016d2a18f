"""`-m comment --comment TEXT`: always matches; nothing to emit."""

from __future__ import annotations

from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.ir import Match, Rule


@register
class Comment:
    module = "comment"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        return None
