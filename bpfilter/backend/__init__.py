"""BPF backend: compile an iptables filter table (IR) into XDP / TC / netfilter programs.

Public API: `compile_table`, `unsupported_reason`, `CompiledProgram`, `CounterSlot`,
`UnsupportedRule`, `counters_spec`, `ifnames_spec`, `ifname_entry`.
"""

from bpfilter.backend.compile import compile_table, counters_spec, ifnames_spec
from bpfilter.backend.model import CompiledProgram, CounterSlot, UnsupportedRule
from bpfilter.backend.plan import unsupported_reason
from bpfilter.backend.runtime import counter_values, ifname_entry

__all__ = [
    "CompiledProgram",
    "CounterSlot",
    "UnsupportedRule",
    "compile_table",
    "counter_values",
    "counters_spec",
    "ifname_entry",
    "ifnames_spec",
    "unsupported_reason",
]
