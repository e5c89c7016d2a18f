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

from bpfilter.backend.compile import counters_spec, ifnames_spec
from bpfilter.backend.flavors import FLAVORS, IFNAMES_MAP
from bpfilter.backend.mapdata import create_filled
from bpfilter.backend.model import CompiledProgram, CounterSlot
from bpfilter.backend.runtime import counter_values, ifname_entry
from bpfilter.loader.maps import Map
from bpfilter.loader.program import Program

NF_HOOKS = {"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3, "POSTROUTING": 4}
NFPROTO_IPV4 = 2
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
        self.counters = Map.create(counters_spec(len(self.slots)))
        self.ifnames: Map | None = None
        self.programs: dict[str, Program] = {}
        self.lookup_maps: dict[str, Map] = {}  # lookup: filled before the program loads
        for cp in programs:
            maps = [self.counters]
            if any(m.name == IFNAMES_MAP for m in cp.program.maps):
                if self.ifnames is None:
                    self.ifnames = Map.create(ifnames_spec())
                    for idx, name in socket.if_nameindex():
                        self.ifnames.update(*ifname_entry(idx, name))
                maps.append(self.ifnames)
            for c in cp.map_contents:
                if c.name not in self.lookup_maps:
                    self.lookup_maps[c.name] = create_filled(c)
            maps.extend(self.lookup_maps[c.name] for c in cp.map_contents)
            self.programs[cp.hook] = Program.load(cp.program, maps)

    def close(self) -> None:
        for p in self.programs.values():
            p.close()
        self.counters.close()
        for m in self.lookup_maps.values():
            m.close()
        if self.ifnames is not None:
            self.ifnames.close()

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
            ctx = struct.pack("<BB", NF_HOOKS[hook], NFPROTO_IPV4).ljust(48, b"\0")
            res = prog.test_run(data, repeat=repeat, ctx_in=ctx)
        verdict = {fl.accept: "ACCEPT", fl.drop: "DROP"}.get(res.retval, f"?{res.retval}")
        return RunResult(verdict, res.retval, res.duration_ns)
