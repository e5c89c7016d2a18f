"""The standard target: ``-j ACCEPT|DROP|QUEUE|RETURN`` (no options).

iptables maps these names to its "standard" target; jumps to user chains use
it too, but those are resolved by the parser against the table's chains.
"""

from __future__ import annotations

from bpfilter.frontend.extensions.base import Extension, register


@register
class StandardTarget(Extension):
    """Verdicts that need no extension; ``Target.name`` keeps the verdict."""

    name = "standard"
    kind = "target"
    aliases = ("ACCEPT", "DROP", "QUEUE", "RETURN")
