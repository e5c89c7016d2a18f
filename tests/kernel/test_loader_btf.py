"""vmlinux BTF reader against this kernel's /sys/kernel/btf/vmlinux."""

from __future__ import annotations

import os

import pytest

from bpfilter.loader import btf
from tests.kernel_required import require_kernel

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def _vmlinux_btf() -> None:
    require_kernel(os.path.exists(btf.VMLINUX_BTF), f"{btf.VMLINUX_BTF} missing (no BTF)")


def test_kfunc_ids_are_func_types() -> None:
    b = btf.load()
    for name in ("bpf_dynptr_from_skb", "bpf_dynptr_slice", "bpf_xdp_ct_lookup",
                 "bpf_ct_release"):
        tid = btf.kfunc_btf_id(name)
        assert b.kind(tid) == btf.BTF_KIND_FUNC
        assert b.name(tid) == name
    with pytest.raises(KeyError):
        btf.kfunc_btf_id("no_such_kfunc_here")
    with pytest.raises(KeyError):
        btf.kfunc_btf_id("sk_buff")  # a struct, not a function


def test_struct_member_offsets() -> None:
    # first members of well-known UAPI-stable-ish layouts
    assert btf.struct_member_offset("bpf_nf_ctx", "state") == 0
    assert btf.struct_member_offset("bpf_nf_ctx", "skb") == 8
    assert btf.struct_member_offset("nf_hook_state", "hook") == 0
    assert btf.struct_member_offset("nf_hook_state", "pf") == 1
    assert btf.struct_member_offset("iphdr", "saddr") == 12
    assert btf.struct_member_offset("ipv6hdr", "saddr") == 8
    assert btf.struct_member_offset("ethhdr", "h_proto") == 12


def test_anonymous_members_and_paths() -> None:
    # sk_buff.network_header lives in anonymous unions/structs (struct_group headers)
    nh = btf.struct_member_offset("sk_buff", "network_header")
    th = btf.struct_member_offset("sk_buff", "transport_header")
    mh = btf.struct_member_offset("sk_buff", "mac_header")
    assert nh == th + 2 and mh == nh + 2
    # dotted paths through named groups give the same answer
    assert btf.struct_member_offset("sk_buff", "headers.network_header") == nh
    assert btf.struct_member_offset("iphdr", "addrs.saddr") == 12
    assert btf.struct_member_offset("udphdr", "dest") == 2
    with pytest.raises(KeyError):
        btf.struct_member_offset("sk_buff", "no_such_member")


def test_bitfield_is_refused() -> None:
    with pytest.raises(ValueError, match="bitfield"):
        btf.struct_member_offset("iphdr", "version")


def test_type_sizes() -> None:
    assert btf.type_size("iphdr") == 20
    assert btf.type_size("ipv6hdr") == 40
    assert btf.type_size("u32") == 4
    assert btf.type_size("nf_hook_state") == 48
    assert btf.type_size("bpf_dynptr") == 16
