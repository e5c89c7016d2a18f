"""Per-packet hand-off from a BPF chain walk to netfilter: BPF decides every packet it
can; a packet whose walk reaches a rule BPF cannot run (REJECT, LOG, limit, set, ...)
is handed, untouched, to netfilter, which holds the *whole* original chain.

How (nf flavor, INPUT and FORWARD only):
* The BPF program runs at the filter table's place, just before netfilter's copy of
  the table (priority -1 vs 0). DROP → NF_DROP (netfilter never sees the packet).
  ACCEPT → it writes the packet's 20-byte IPv4 header into the per-CPU slot of the map
  "handoff" with valid=1, then NF_ACCEPT. Hand-off (the walk reached a rule it cannot
  run, after that rule's compilable conditions matched) → valid=0, NF_ACCEPT.
* Netfilter's chain starts with `-m bpf --object-pinned CHECKER -j ACCEPT`: the
  checker (a socket filter, `checker_spec`) matches iff the slot is valid and holds
  this packet's IP header. Then come the chain's original rules and policy.
Why exact: BPF's verdicts are iptables' verdicts for the walk it ran (the same rules,
first match wins); a handed-off packet meets netfilter's complete chain, which gives
iptables' verdict and side effects (the REJECT reply, the LOG line, limit tokens —
evaluated once, since BPF stopped before them; the rules BPF evaluated before the
hand-off are side-effect free). The slot can only mislead the checker into ACCEPT if
it holds this packet's exact IP header from a packet BPF accepted: INPUT and FORWARD
run in the receive path with bottom halves disabled, so between the two hook
functions no other packet is processed on that CPU and the slot is this packet's own.
Any other mismatch (slot invalid or from another packet) makes netfilter walk the full
chain: slower, still exact. The order matters: the BPF program must run first, or the
checker would read the previous packet's slot (identical headers do happen: unconnected
DF UDP sockets send IP ID 0), so the pipeline attaches hand-off programs at priority -1
with no fallback place, and every nf program at -1 so that updates in place keep it.
OUTPUT runs in process context (preemptible with preempt=full): its chains are not
handed off (they go to netfilter whole, plan.py).
Counters: rules BPF evaluated count there; handed-off packets are also counted by
netfilter's copy (its counters are not merged into `bpfilter save`).
"""

from __future__ import annotations

from dataclasses import replace

from llvmlite import ir

from bpfilter.backend.gen import (
    I32,
    I64,
    PTR,
    BPF_FUNC_map_lookup_elem,
    BPF_FUNC_skb_load_bytes,
    Gen,
)
from bpfilter.ir import Family, Match, Option, Rule, Table, Target
from bpfilter.loader import syscall as sc
from bpfilter.loader.elf import program_spec_from_elf
from bpfilter.loader.maps import MapSpec
from bpfilter.loader.program import ProgramSpec
from bpfilter.loader.toolchain import compile_ir

HANDOFF_MAP = "handoff"
SLOT_SIZE = 32  # u64 valid; u8 iphdr[20]; pad
HDR = 20
CHECKER_NAME = "handoff_check"
HANDOFF_CHAINS = frozenset({"INPUT", "FORWARD"})


def handoff_spec() -> MapSpec:
    return MapSpec(HANDOFF_MAP, sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, SLOT_SIZE, 1)


def _slot(g: Gen) -> tuple[ir.Value, ir.Block]:
    """(pointer to this CPU's slot, current block); the lookup of key 0 never fails on
    an array, but the verifier wants the NULL check."""
    cache: dict[str, ir.Value] = g.__dict__.setdefault("_shared_stack", {})
    key = cache.get("hokey")
    if key is None:
        key = cache["hokey"] = g.stack(4, "hokey", zero=False)
    g.b.store(I32(0), key, align=4)
    val = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(HANDOFF_MAP), key])
    return val, g.b.block


def emit_mark(g: Gen, ip: ir.Value | None, done: ir.Block) -> None:
    """Write the slot: valid=1 + the IP header at `ip` (a stack copy), or valid=0 when
    `ip` is None; then go to `done`."""
    b = g.b
    val, _ = _slot(g)
    ok = g.block("ho.slot")
    b.cbranch(b.icmp_unsigned("==", val, ir.Constant(PTR, None)), done, ok)
    g.at(ok)
    b.store(I64(0 if ip is None else 1), val, align=8)
    if ip is not None:
        for off in range(0, HDR, 4):
            b.store(g.load(ip, off, I32, align=4), g.ptr(val, 8 + off), align=4)
    b.branch(done)


def checker_spec() -> ProgramSpec:
    """Socket filter for xt_bpf: 1 when this CPU's slot is valid and holds the packet's
    IPv4 header (skb->data is the network header at the netfilter hooks)."""
    module = ir.Module(name=CHECKER_NAME)
    module.triple = "bpfel"
    func = ir.Function(module, ir.FunctionType(I32, [PTR]), CHECKER_NAME)
    func.section = "socket"
    func.attributes.add("nounwind")
    g = Gen(module, func)
    b = g.b
    no, yes = g.block("no"), g.block("yes")
    buf = g.stack(24, "hdr")
    rc = g.helper(BPF_FUNC_skb_load_bytes, I64, [func.args[0], I64(0), buf, I64(HDR)])
    g.require(b.icmp_signed("==", rc, I64(0)), no, "hdr")
    val, _ = _slot(g)
    g.require(b.icmp_unsigned("!=", val, ir.Constant(PTR, None)), no, "slot")
    g.require(b.icmp_unsigned("==", b.load(val, typ=I64, align=8), I64(1)), no, "valid")
    for off in range(0, HDR, 4):
        same = b.icmp_unsigned("==", g.load(val, 8 + off, I32, align=4),
                               g.load(buf, off, I32, align=4))
        g.require(same, no, "same")
    b.branch(yes)
    g.at(yes)
    b.ret(I32(1))
    g.at(no)
    b.ret(I32(0))
    return program_spec_from_elf(compile_ir(str(module)), "socket", CHECKER_NAME,
                                 sc.BPF_PROG_TYPE_SOCKET_FILTER, 0, [handoff_spec()])


def checker_rule(pin_path: str) -> Rule:
    """The head rule of a handed-off chain in netfilter."""
    return Rule(matches=(Match("bpf", (Option("object-pinned", pin_path),)),),
                target=Target("ACCEPT"))


def handoff_points(table: Table, family: Family, root: str) -> dict[tuple[str, int], int]:
    """(chain, rule) → matches to check first, for each rule reachable from `root` that
    the nf flavor cannot run: the kernel checks a rule's matches in order, so the
    compilable ones before the first uncompilable match (all of them when only the
    target is the problem) decide whether the packet reaches it at all."""
    from bpfilter.backend.matchers import matcher
    from bpfilter.backend.plan import reachable_rules, unsupported_reason

    out: dict[tuple[str, int], int] = {}
    for chain, num, rule in reachable_rules(table, (root,), family):
        if unsupported_reason(rule, family, "nf") is None:
            continue
        j = len(rule.matches)
        for k, m in enumerate(rule.matches):
            mc = matcher(m.module)
            if mc is None or mc.unsupported(m, rule) or not _family_ok(m, family):
                j = k
                break
        out[(chain, num)] = j
    return out


def _family_ok(m: Match, family: Family) -> bool:
    """IPv6 (by H11): only the matchers written for the IPv6 prologue may run before
    the hand-off (several IPv4 matchers read IPv4 header offsets)."""
    if family == Family.IPV4:
        return True
    from bpfilter.backend.support6 import IPV6_MODULES

    return m.module in IPV6_MODULES


def with_checker(table: Table, chains: frozenset[str], pin_path: str) -> Table:
    """Netfilter's copy of `table` with the checker rule at the head of `chains`."""
    head = checker_rule(pin_path)
    return replace(table, chains=tuple(
        replace(c, rules=(head, *c.rules)) if c.name in chains else c for c in table.chains))
