"""``-m cluster`` (xt_cluster): hash-based load sharing between cluster nodes.

Values (as the kernel keeps them, which is also what 1.8.9 prints):
``cluster-local-nodemask`` int bitmask (``--cluster-local-node N`` becomes
bit N-1; ``!`` inverts), ``cluster-total-nodes`` int (1-32),
``cluster-hash-seed`` int. Save prints the mask form, always in that order.
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
from bpfilter.frontend.extensions.types import UINT32_MAX, parse_uint
from bpfilter.ir import Option

NODES_MAX = 32


def _u32(opt: str):
    return lambda a, c: parse_uint(a[0], UINT32_MAX, "cluster", opt)


@register
class ClusterMatch(Extension):
    """Cluster node match."""

    name = "cluster"
    kind = "match"
    options = (
        OptionSpec("cluster-local-nodemask", _u32("cluster-local-nodemask"), invert=True),
        OptionSpec("cluster-total-nodes", _u32("cluster-total-nodes")),
        OptionSpec("cluster-hash-seed", _u32("cluster-hash-seed")),
        OptionSpec("cluster-local-node", _u32("cluster-local-node"), invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        found = by_name(options)
        node, mask = found.get("cluster-local-node"), found.get("cluster-local-nodemask")
        if node is not None and mask is not None:
            raise ExtensionError(
                'cluster: option "--cluster-local-nodemask" cannot be used together with '
                '"--cluster-local-node".'
            )
        if node is None and mask is None:
            raise ExtensionError(
                "cluster match: `--cluster-local-node' or`--cluster-local-nodemask' is missing"
            )
        total = must_have(found, "cluster-total-nodes", "cluster").value
        seed = must_have(found, "cluster-hash-seed", "cluster").value
        if node is not None:
            nodemask = (1 << ((node.value - 1) & 31)) & UINT32_MAX
            negated = node.negated
        else:
            assert mask is not None
            nodemask, negated = mask.value, mask.negated
        if total > NODES_MAX:
            raise ExtensionError(f"cluster: you have exceeded the maximum number of cluster "
                                 f"nodes ({total} > {NODES_MAX})")
        if nodemask >= (1 << total):
            raise ExtensionError("cluster: node mask cannot exceed total number of nodes")
        return (
            Option("cluster-local-nodemask", nodemask, negated),
            Option("cluster-total-nodes", total),
            Option("cluster-hash-seed", seed),
        )

    def format_value(self, opt: Option) -> str:
        if opt.name == "cluster-total-nodes":
            return str(opt.value)
        return f"0x{opt.value:08x}"
