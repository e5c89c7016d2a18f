"""Load a compiled table and run it on packets with BPF_PROG_TEST_RUN.

Why in the backend: matcher tests, `bpfilter` debugging and micro-benchmarks all need
"load these programs with one shared counters map, run a frame, read verdict and
counters"; the layouts (ctx structs, verdict numbers) are codegen's to know.
Must run inside the network namespace whose interfaces the frames pretend to
arrive on (bpf_fib_lookup and the ifnames map are per namespace).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from bpfilter.backend.emit import COUNTERS_MAP
from bpfilter.backend.flavors import FLAVORS, IFNAMES_MAP
from bpfilter.backend.mapdata import MapContents, create_filled
from bpfilter.backend.model import CompiledProgram, CounterSlot
from bpfilter.backend.runtime import counter_values, ifname_entry
from bpfilter.loader.maps import Map, MapSpec
from bpfilter.loader.program import Program

NF_HOOKS = {"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3, "POSTROUTING": 4}
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10
TC_ACT_UNSPEC_U32 = 0xFFFFFFFF
XDP_MD = struct.Struct("<IIIIII")  # data, data_end, data_meta, ingress_ifindex, rxq, egress
SKB_CTX_SIZE = 192  # sizeof(struct __sk_buff) (fields past the ones we set stay zero)


@dataclass(frozen=True)
class RunResult:
    verdict: str  # "ACCEPT" | "DROP" | "PASS" (pass == accept value: kernel decides)
    retval: int
    duration_ns: int


class LoadedTable:
    """The programs of one compile_table() call, loaded, sharing one counters map."""

    def __init__(self, programs: Sequence[CompiledProgram]) -> None:
        self.compiled = tuple(programs)
        self.slots: tuple[CounterSlot, ...] = programs[0].counter_slots
        self.maps: dict[str, Map] = {}  # one live map per name, shared by the programs
        self.programs: dict[str, Program] = {}
        try:
            for cp in programs:
                contents = {c.name: c for c in cp.map_contents}
                live = [self._map(spec, contents) for spec in cp.program.maps]
                self.programs[cp.hook] = Program.load(cp.program, live)
        except BaseException:
            self.close()
            raise
        self.counters = self.maps[COUNTERS_MAP]

    def _map(self, spec: MapSpec, contents: dict[str, MapContents]) -> Map:
        m = self.maps.get(spec.name)
        if m is None:
            # lookup maps are filled before the program loads
            m = create_filled(contents[spec.name]) if spec.name in contents else \
                Map.create(spec)
            self.maps[spec.name] = m
            if spec.name == IFNAMES_MAP:
                for idx, name in socket.if_nameindex():
                    m.update(*ifname_entry(idx, name))
        return m

    def close(self) -> None:
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()
        self.programs, self.maps = {}, {}

    def __enter__(self) -> LoadedTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counter(self, chain: str, rule_number: int | None) -> tuple[int, int]:
        i = self.slots.index(CounterSlot(chain, rule_number))
        vals = self.counters.lookup_percpu(struct.pack("<I", i))
        assert vals is not None
        return counter_values(vals)

    def all_counters(self) -> dict[tuple[str, int | None], tuple[int, int]]:
        return {(s.chain, s.rule_number): self.counter(s.chain, s.rule_number)
                for s in self.slots}

    def deliver(self, chain: str, frame: bytes, ifindex: int = 0) -> RunResult:
        """The table's verdict for a frame whose kernel path meets `chain`.

        nf: the chain's program. xdp/tc: the ingress program, and when it passes the
        packet on (accept with no counter moved: every decision counts a rule or a
        policy) the chain's nf companion, as the kernel would deliver it there.
        """
        if "ingress" not in self.programs:
            return self.run(chain, frame, ifindex)
        before = self.all_counters()
        res = self.run("ingress", frame, ifindex)
        if res.verdict == "ACCEPT" and chain in self.programs and self.all_counters() == before:
            return self.run(chain, frame, ifindex)
        return res

    def run(self, hook: str, frame: bytes, ifindex: int = 0, repeat: int = 1) -> RunResult:
        """Run the program for `hook` on an Ethernet `frame`.

        xdp/tc: hook "ingress", `ifindex` = the receiving interface. nf: hook is the
        chain; the kernel's test run uses loopback as in/out device and strips the
        Ethernet header itself (except at OUTPUT, where `frame` must start at IP:
        we strip it here).
        """
        cp = next(c for c in self.compiled if c.hook == hook)
        prog = self.programs[hook]
        fl = FLAVORS[cp.flavor]
        if cp.flavor == "xdp":
            ctx = XDP_MD.pack(0, 0, 0, ifindex, 0, 0)
            res = prog.test_run(frame, repeat=repeat, ctx_in=ctx)
        elif cp.flavor == "tc":
            ctx = bytearray(SKB_CTX_SIZE)
            struct.pack_into("<I", ctx, 40, ifindex)  # __sk_buff.ifindex
            res = prog.test_run(frame, repeat=repeat, ctx_in=bytes(ctx))
        else:
            data = frame[14:] if hook == "OUTPUT" else frame
            pf = NFPROTO_IPV6 if frame[12:14] == b"\x86\xdd" else NFPROTO_IPV4  # (H11)
            ctx = struct.pack("<BB", NF_HOOKS[hook], pf).ljust(48, b"\0")
            res = prog.test_run(data, repeat=repeat, ctx_in=ctx)
        # tc: TC_ACT_UNSPEC (-1, TCX_NEXT) passes too: the next program or the stack decides
        accepts = {fl.accept, -1, TC_ACT_UNSPEC_U32} if cp.flavor == "tc" else {fl.accept}
        verdict = "ACCEPT" if res.retval in accepts else \
            {fl.drop: "DROP"}.get(res.retval, f"?{res.retval}")
        return RunResult(verdict, res.retval, res.duration_ns)
