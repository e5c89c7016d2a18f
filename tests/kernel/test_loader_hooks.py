"""TC and NETFILTER programs through BPF_PROG_TEST_RUN, and how nf programs read packets.

These pin down facts codegen relies on (see bpfilter/loader/program.py NETFILTER_NOTES):
the nf test_run context, where the L3 header is, and which packet-reading methods the
verifier accepts for BPF_PROG_TYPE_NETFILTER.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from bpfilter.loader import btf
from bpfilter.loader import syscall as sc
from bpfilter.loader.elf import program_spec_from_elf
from bpfilter.loader.maps import Map, MapSpec
from bpfilter.loader.program import Program, nf_test_ctx
from bpfilter.loader.toolchain import compile_ir
from tests.kernel_required import kernel  # noqa: F401  (fixture)

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("kernel")]

ETH4 = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
ETH6 = b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd"


def ipv4_udp(sport: int = 1234, dport: int = 53) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 12, 0) + b"abcd"
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return hdr + udp


def ipv6_udp() -> bytes:
    udp = struct.pack("!HHHH", 1234, 53, 12, 0) + b"abcd"
    return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, b"\xfe\x80" + b"\0" * 13
                       + b"\x01", b"\xfe\x80" + b"\0" * 13 + b"\x02") + udp


OUT = MapSpec("out", sc.BPF_MAP_TYPE_ARRAY, 4, 32, 1)


def nf_probe(out: Map, body: str, decls: str = "", allocas: str = "") -> Program:
    """An nf program that writes 4 u64 results into map ``out`` and returns NF_ACCEPT.

    ``body`` sees %skb (struct sk_buff *) and %slot (ptr to the 32-byte value).
    Allocas must be in the entry block (LLVM's BPF backend has no dynamic stack).
    """
    ir_text = f"""
@out = external global i8
{decls}
define i32 @nf_probe(ptr %ctx) nounwind section "nf" {{
entry:
  %k = alloca i32
{allocas}
  store i32 0, ptr %k
  %slot = call ptr inttoptr (i64 1 to ptr)(ptr @out, ptr %k)
  %miss = icmp eq ptr %slot, null
  br i1 %miss, label %done, label %go
go:
  %pp = getelementptr i8, ptr %ctx, i64 {btf.struct_member_offset("bpf_nf_ctx", "skb")}
  %skb = load ptr, ptr %pp
{body}
  br label %done
done:
  ret i32 1
}}
"""
    spec = program_spec_from_elf(compile_ir(ir_text), "nf", "nf_probe",
                                 sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER, [OUT])
    return Program.load(spec, [out])


@pytest.fixture
def out() -> Iterator[Map]:
    with Map.create(OUT) as m:
        yield m


def results(out: Map) -> tuple[bytes, bytes, bytes, bytes]:
    raw = out.lookup(struct.pack("<I", 0))
    assert raw is not None
    return raw[0:8], raw[8:16], raw[16:24], raw[24:32]


def _store(i: int, value: str) -> str:
    return f"""  %s{i} = getelementptr i64, ptr %slot, i64 {i}
  store i64 {value}, ptr %s{i}
"""


# --- TC ---------------------------------------------------------------------------------

def test_tc_program_test_run() -> None:
    ir_text = """
define i32 @tc_main(ptr %ctx) nounwind section "tc" {
  %lp = getelementptr i8, ptr %ctx, i64 0
  %len = load i32, ptr %lp
  %big = icmp ugt i32 %len, 60
  %v = select i1 %big, i32 2, i32 0
  ret i32 %v
}
"""
    # __sk_buff.len is at offset 0: drop (TC_ACT_SHOT) frames longer than 60 bytes
    spec = program_spec_from_elf(compile_ir(ir_text), "tc", "tc_main",
                                 sc.BPF_PROG_TYPE_SCHED_CLS)
    with Program.load(spec) as p:
        short = ETH4 + ipv4_udp()
        assert p.test_run(short).retval == sc.TC_ACT_OK
        r = p.test_run(short + b"\0" * 40)
        assert r.retval == sc.TC_ACT_SHOT
        assert r.data_out == short + b"\0" * 40


# --- NETFILTER --------------------------------------------------------------------------

def test_nf_test_run_needs_eth_header_except_local_out() -> None:
    spec = program_spec_from_elf(
        compile_ir('define i32 @acc(ptr %c) nounwind section "nf" { ret i32 1 }'),
        "nf", "acc", sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER)
    with Program.load(spec) as p:
        assert p.test_run(ipv4_udp()).retval == sc.NF_ACCEPT  # default: LOCAL_OUT, IPv4
        for hook in (sc.NF_INET_PRE_ROUTING, sc.NF_INET_LOCAL_IN, sc.NF_INET_FORWARD,
                     sc.NF_INET_POST_ROUTING):
            assert p.test_run(ETH4 + ipv4_udp(), ctx_in=nf_test_ctx(hook)).retval == 1
            with pytest.raises(sc.BpfError):  # no Ethernet header: EINVAL
                p.test_run(ipv4_udp(), ctx_in=nf_test_ctx(hook))
        ctx6 = nf_test_ctx(sc.NF_INET_LOCAL_IN, sc.NFPROTO_IPV6)
        assert p.test_run(ETH6 + ipv6_udp(), ctx_in=ctx6).retval == 1
        with pytest.raises(sc.BpfError):  # pf must agree with the ethertype
            p.test_run(ETH4 + ipv4_udp(), ctx_in=ctx6)


def test_nf_return_value_must_be_0_or_1() -> None:
    ir_text = 'define i32 @ret2(ptr %c) nounwind section "nf" { ret i32 2 }'
    spec = program_spec_from_elf(compile_ir(ir_text), "nf", "ret2",
                                 sc.BPF_PROG_TYPE_NETFILTER, sc.BPF_NETFILTER)
    with pytest.raises(sc.BpfError) as ei:
        Program.load(spec)
    assert "should have been in [0, 1]" in str(ei.value)


NF_CASES = [
    pytest.param(ipv4_udp(), None, id="ipv4-local-out"),
    pytest.param(ETH4 + ipv4_udp(), (sc.NF_INET_LOCAL_IN, sc.NFPROTO_IPV4), id="ipv4-local-in"),
    pytest.param(ETH4 + ipv4_udp(), (sc.NF_INET_FORWARD, sc.NFPROTO_IPV4), id="ipv4-forward"),
    pytest.param(ETH6 + ipv6_udp(), (sc.NF_INET_PRE_ROUTING, sc.NFPROTO_IPV6), id="ipv6-pre"),
]


def _l3(data: bytes) -> bytes:
    return data[14:] if data[:14] in (ETH4, ETH6) else data


@pytest.mark.parametrize(("data", "hook"), NF_CASES)
def test_nf_dynptr_read_sees_l3_header_at_offset_0(data: bytes, hook, out: Map) -> None:
    body = """  %rc = call i32 @bpf_dynptr_from_skb(ptr %skb, i64 0, ptr %dyn)
  %rc64 = sext i32 %rc to i64
  %rr = call i64 inttoptr (i64 201 to ptr)(ptr %buf, i32 24, ptr %dyn, i32 0, i64 0)
  %b0 = load i64, ptr %buf
  %b1p = getelementptr i8, ptr %buf, i64 8
  %b1 = load i64, ptr %b1p
""" + _store(0, "%rc64") + _store(1, "%rr") + _store(2, "%b0") + _store(3, "%b1")
    allocas = "  %dyn = alloca [2 x i64], align 8\n  %buf = alloca [24 x i8], align 8"
    with nf_probe(out, body, "declare i32 @bpf_dynptr_from_skb(ptr, i64, ptr)", allocas) as p:
        ctx = nf_test_ctx(*hook) if hook else None
        assert p.test_run(data, ctx_in=ctx).retval == sc.NF_ACCEPT
    rc, rr, b0, b1 = results(out)
    assert rc == rr == b"\0" * 8
    assert b0 + b1 == _l3(data)[:16]


@pytest.mark.parametrize(("data", "hook"), NF_CASES)
def test_nf_dynptr_slice(data: bytes, hook, out: Map) -> None:
    body = """  %rc = call i32 @bpf_dynptr_from_skb(ptr %skb, i64 0, ptr %dyn)
  %p = call ptr @bpf_dynptr_slice(ptr %dyn, i32 0, ptr %buf, i32 16)
  %isn = icmp eq ptr %p, null
  br i1 %isn, label %done, label %have
have:
  %b0 = load i64, ptr %p, align 1
  %b1p = getelementptr i8, ptr %p, i64 8
  %b1 = load i64, ptr %b1p, align 1
""" + _store(2, "%b0") + _store(3, "%b1")
    decls = ("declare i32 @bpf_dynptr_from_skb(ptr, i64, ptr)\n"
             "declare ptr @bpf_dynptr_slice(ptr, i32, ptr, i32)")
    allocas = "  %dyn = alloca [2 x i64], align 8\n  %buf = alloca [16 x i8], align 8"
    with nf_probe(out, body, decls, allocas) as p:
        p.test_run(data, ctx_in=nf_test_ctx(*hook) if hook else None)
    _, _, b0, b1 = results(out)
    assert b0 + b1 == _l3(data)[:16]


@pytest.mark.parametrize(("data", "hook"), NF_CASES)
def test_nf_probe_read_kernel_from_skb_data(data: bytes, hook, out: Map) -> None:
    data_off = btf.struct_member_offset("sk_buff", "data")
    body = f"""  %dp = getelementptr i8, ptr %skb, i64 {data_off}
  %d = load ptr, ptr %dp
  %rr = call i64 inttoptr (i64 113 to ptr)(ptr %buf, i32 16, ptr %d)
  %b0 = load i64, ptr %buf
  %b1p = getelementptr i8, ptr %buf, i64 8
  %b1 = load i64, ptr %b1p
""" + _store(1, "%rr") + _store(2, "%b0") + _store(3, "%b1")
    with nf_probe(out, body, allocas="  %buf = alloca [16 x i8], align 8") as p:
        p.test_run(data, ctx_in=nf_test_ctx(*hook) if hook else None)
    _, rr, b0, b1 = results(out)
    assert rr == b"\0" * 8
    assert b0 + b1 == _l3(data)[:16]


def test_nf_reads_skb_fields_through_btf(out: Map) -> None:
    o = btf.struct_member_offset
    body = f"""  %lp = getelementptr i8, ptr %skb, i64 {o("sk_buff", "len")}
  %len = load i32, ptr %lp
  %l64 = zext i32 %len to i64
  %prp = getelementptr i8, ptr %skb, i64 {o("sk_buff", "protocol")}
  %proto = load i16, ptr %prp
  %p64 = zext i16 %proto to i64
""" + _store(0, "%l64") + _store(1, "%p64")
    pkt = ipv4_udp()
    with nf_probe(out, body) as p:
        p.test_run(ETH4 + pkt, ctx_in=nf_test_ctx(sc.NF_INET_LOCAL_IN))
    length, proto, _, _ = results(out)
    assert struct.unpack("<Q", length)[0] == len(pkt)  # Ethernet header already pulled
    assert struct.unpack("<Q", proto)[0] == 0x0008  # htons(ETH_P_IP) read little-endian
