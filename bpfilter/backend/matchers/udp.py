"""`-p udp` / `-m udp`: --sport / --dport (xt_tcpudp.c udp_mt): non-first fragments
never match, fewer than 8 bytes of UDP header → hotdrop."""

from __future__ import annotations

from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import header_guard
from bpfilter.backend.matchers._ports import PORT_OPTIONS, emit_ports
from bpfilter.ir import Match, Rule

UDPHDR = 8


@register
class Udp:
    module = "udp"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in PORT_OPTIONS:
                return f"udp option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return UDPHDR

    def emit(self, rc: RuleCtx, match: Match) -> None:
        header_guard(rc, UDPHDR)
        emit_ports(rc, match)
