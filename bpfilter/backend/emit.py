"""Emit: the chain walk as LLVM IR, with user chains inlined at each call site.

Why inlining: iptables forbids loops, so every walk is a finite tree; inlined chains
let LLVM optimise across rules and keep the verifier's job trivial (no subprogram
calls with stack pointers). `-j X` continues after the rule when X returns; `-g X`
continues where the *calling* chain would return (RETURN in a goto'd chain returns
past the caller), and RETURN or the end of a built-in chain applies its policy.
Cost: a user chain called from k places is emitted k times (typical rulesets call
each chain from one or two places; a later pass can switch to subprograms).
"""

from __future__ import annotations

from collections.abc import Mapping

from llvmlite import ir

from bpfilter.backend.flavors import Flavor, Needs
from bpfilter.backend.gen import I32, I64, PTR, BPF_FUNC_map_lookup_elem, Gen
from bpfilter.backend.lookup import Exits, TreeLookup, emit_tree_lookup, steps_with_lookups
from bpfilter.backend.matchers import RuleCtx, matcher
from bpfilter.backend.matchers.generic import emit_generic
from bpfilter.backend.packet import Packet, PacketView
from bpfilter.backend.plan import TablePlan
from bpfilter.backend.runs import ExactRun
from bpfilter.ir import STANDARD_VERDICTS, Rule

COUNTERS_MAP = "counters"


class ProgramEmitter:
    """Builds the LLVM module of one program."""

    def __init__(self, plan: TablePlan, flavor: Flavor, needs: Needs,
                 lookups: Mapping[tuple[str, int], TreeLookup] | None = None,
                 handoff: Mapping[tuple[str, int], int] | None = None) -> None:
        self.plan = plan
        # handoff (backend/handoff.py, by H10): (chain, rule) → how many of the rule's
        # matches to check before handing the packet to netfilter (rule BPF cannot run)
        self.handoff = handoff or {}
        self._ip: ir.Value | None = None
        self.flavor = flavor
        self.needs = needs
        self._tot_len: ir.Value | None = None
        # lookup: runs replaced by a classifier lookup (lookup.py), by (chain, first rule)
        self.lookups = lookups or {}
        self.used_lookups: dict[tuple[str, int], TreeLookup] = {}

    def build(self, prog_name: str, chains: tuple[str, ...]) -> ir.Module:
        module = ir.Module(name=prog_name)
        module.triple = "bpfel"
        func = ir.Function(module, ir.FunctionType(I32, [PTR]), prog_name)
        func.section = self.flavor.section
        func.attributes.add("nounwind")
        g = self.g = Gen(module, func)
        self._pending_counts: list[tuple[ir.Block, ir.Block]] = []
        self.key = g.stack(8, "slot", zero=False)
        cur = g.b.block
        self.accept = self._ret_block("accept", self.flavor.accept)
        self.drop = self._ret_block("drop", self.flavor.drop)
        self.hotdrop = self._ret_block("hotdrop", self.flavor.drop)
        self.pass_ = self._ret_block("pass", self.flavor.accept)
        if self.handoff:  # ACCEPT paths tell netfilter's copy what BPF decided
            self.accept, self.pass_ = g.block("accept.ho"), g.block("pass.ho")
            self.handoff_blk = g.block("handoff")
        # Terminal rules store their slot and jump here: one counting sequence per
        # verdict instead of one per rule keeps the program (and its jumps) short.
        self.count_accept = self._count_block("count_accept", self.accept)
        self.count_drop = self._count_block("count_drop", self.drop)
        g.at(cur)
        self.flavor.emit_prologue(g, self.needs, chains, self._emit_builtin, self.pass_)
        if self.handoff:
            from bpfilter.backend.handoff import emit_mark

            for blk, ip in ((self.accept, self._ip), (self.pass_, None),
                            (self.handoff_blk, None)):
                g.at(blk)
                ret = g.block("ret")
                emit_mark(g, ip, ret)
                g.at(ret)
                g.b.ret(I32(self.flavor.accept))
        for blk, then in self._pending_counts:
            g.at(blk)
            if self._tot_len is None:  # no rule jumped here
                g.b.unreachable()
                continue
            self._count_stored(self._tot_len)
            g.b.branch(then)
        return module

    def _count_block(self, name: str, then: ir.Block) -> ir.Block:
        """Block counting the slot already stored in self.key, then going to `then`.
        Needs tot_len: read again from the IP header (it is the same for every rule)."""
        blk = self.g.block(name)
        self._pending_counts.append((blk, then))
        return blk

    def _ret_block(self, name: str, value: int) -> ir.Block:
        blk = self.g.block(name)
        self.g.at(blk)
        self.g.b.ret(I32(value))
        return blk

    # --- chains --------------------------------------------------------------------
    def _emit_builtin(self, name: str, pkt: Packet) -> None:
        g = self.g
        self._ip = pkt.ip
        chain = self.plan.table.chain(name)
        start = g.b.block
        policy_blk = g.block(f"{name}.policy")
        g.at(policy_blk)
        policy = chain.policy if chain is not None else "ACCEPT"
        if chain is not None:
            self._count(self.plan.slot(name, None), pkt)
        g.b.branch(self.accept if policy == "ACCEPT" else self.drop)
        g.at(start)
        if chain is None:
            g.b.branch(policy_blk)
            return
        self._emit_chain(name, pkt, policy_blk, (name,))

    def _emit_chain(self, name: str, pkt: Packet, ret: ir.Block, stack: tuple[str, ...]) -> None:
        g = self.g
        chain = self.plan.table.chain(name)
        assert chain is not None
        for step in steps_with_lookups(chain, self.lookups, self.plan.min_run):
            if isinstance(step, TreeLookup):  # lookup: a whole run as one classifier lookup
                self._emit_lookup(step, pkt)
                continue
            if isinstance(step, ExactRun):
                nxt = g.block(f"{name}.{step.first + step.length}")
                self._emit_run(name, step, pkt, nxt)
                g.at(nxt)
                continue
            i, rule = step, chain.rules[step - 1]
            nxt = g.block(f"{name}.{i + 1}")
            if (name, i) in self.handoff:  # handoff: its checks, then on to netfilter
                from dataclasses import replace

                self._emit_matches(replace(rule, matches=rule.matches[:self.handoff[(name, i)]]),
                                   pkt, nxt)
                g.b.branch(self.handoff_blk)
                g.at(nxt)
                continue
            self._emit_matches(rule, pkt, nxt)
            t = rule.target
            slot = self.plan.slot(name, i)
            if t is not None and t.name in ("ACCEPT", "DROP"):
                self._terminal(slot, t.name, pkt)
                g.at(nxt)
                continue
            self._count(slot, pkt)
            if t is None:
                g.b.branch(nxt)
            elif t.name == "RETURN":
                g.b.branch(ret)
            else:
                assert t.name not in STANDARD_VERDICTS and t.name not in stack
                self._emit_chain(t.name, pkt, ret if t.goto else nxt, (*stack, t.name))
            g.at(nxt)
        g.b.branch(ret)

    def _emit_lookup(self, lk: TreeLookup, pkt: Packet) -> None:
        """lookup: rules lk.first..lk.last as one tree lookup (backend/lookup.py)."""
        nxt = self.g.block(f"{lk.chain}.{lk.last + 1}")
        self._tot_len = pkt.tot_len
        self.used_lookups[(lk.chain, lk.first)] = lk
        emit_tree_lookup(self.g, pkt, lk, Exits(self.key, self.count_accept,
                                                self.count_drop, self.hotdrop, nxt))
        self.g.at(nxt)

    def _emit_matches(self, rule: Rule, pkt: Packet, fail: ir.Block) -> RuleCtx:
        """Generic fields, then each match in order; continues when all match."""
        rc = RuleCtx(self.g, PacketView(self.g, pkt), rule, fail=fail, hotdrop=self.hotdrop)
        if getattr(self.flavor, "family", 4) == 6:  # IPv6 (by H11)
            from bpfilter.backend.matchers._generic6 import emit_generic6

            emit_generic6(rc, rule)
        else:
            emit_generic(rc, rule)
        for m in rule.matches:
            mc = matcher(m.module)
            assert mc is not None
            mc.emit(rc, m)
        return rc

    def _terminal(self, slot: int, verdict: str, pkt: Packet) -> None:
        """Count `slot` and end the walk with ACCEPT/DROP (through the shared tail)."""
        self._tot_len = pkt.tot_len
        self.g.b.store(I32(slot), self.key, align=4)
        self.g.b.branch(self.count_accept if verdict == "ACCEPT" else self.count_drop)

    def _emit_run(self, chain: str, run: ExactRun, pkt: Packet, fail: ir.Block) -> None:
        """The template's checks once, then a binary search over the run's values."""
        g, b = self.g, self.g.b
        rc = self._emit_matches(run.template, pkt, fail)
        p = rc.pkt
        if run.field in ("src", "dst"):
            off = 12 if run.field == "src" else 16
            hi, lo = g.be16(p.ip, off), g.be16(p.ip, off + 2)
            value = b.or_(b.shl(hi, I32(16)), lo)
        else:
            value = g.be16(p.l4, 0 if run.field == "sport" else 2)
        assert run.template.target is not None
        verdict = run.template.target.name

        def search(leaves: tuple[tuple[int, int], ...]) -> None:
            if len(leaves) <= 2:
                for v, rule_no in leaves:
                    hit = g.block(f"{chain}.{rule_no}.hit")
                    g.branch_if(b.icmp_unsigned("==", value, I32(v)), hit, "miss")
                    cur = b.block
                    g.at(hit)
                    self._terminal(self.plan.slot(chain, rule_no), verdict, pkt)
                    g.at(cur)
                b.branch(fail)
                return
            mid = len(leaves) // 2
            left, right = g.block("lt"), g.block("ge")
            b.cbranch(b.icmp_unsigned("<", value, I32(leaves[mid][0])), left, right)
            g.at(left)
            search(leaves[:mid])
            g.at(right)
            search(leaves[mid:])

        search(run.leaves)

    def _count(self, slot: int, pkt: Packet) -> None:
        """counters[slot] += {1 packet, tot_len bytes} (per-CPU: no atomics)."""
        self.g.b.store(I32(slot), self.key, align=4)
        self._count_stored(pkt.tot_len)

    def _count_stored(self, tot_len: ir.Value) -> None:
        g, b = self.g, self.g.b
        val = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(COUNTERS_MAP), self.key])
        done, hit = g.block("counted"), g.block("count")
        b.cbranch(b.icmp_unsigned("==", val, ir.Constant(PTR, None)), done, hit)
        g.at(hit)
        pk = g.ptr(val, 0)
        b.store(b.add(b.load(pk, typ=I64, align=8), I64(1)), pk, align=8)
        by = g.ptr(val, 8)
        b.store(b.add(b.load(by, typ=I64, align=8), b.zext(tot_len, I64)), by, align=8)
        b.branch(done)
        g.at(done)
