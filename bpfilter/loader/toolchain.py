"""LLVM IR → BPF ELF object, with llvmlite (no clang).

Why here: codegen (bpfilter/backend) builds LLVM IR; this module is the one place that
knows how to turn it into kernel-loadable bytes, so the conventions below are the contract
between codegen and loader (elf.py reads exactly what this produces).

Conventions for the IR (checked by tests/unit/test_elf*.py):

* **Program entry**: a function taking the context pointer and returning ``i32``, placed in
  its own section with ``section "<name>"`` (e.g. ``"xdp"``, ``"tc"``, ``"nf"``); that
  section name is what :func:`bpfilter.loader.elf.program_spec_from_elf` is given. Mark
  functions ``nounwind`` to avoid an (ignored) ``.eh_frame``. Helper functions may live in
  ``.text`` (default) or the same section; both kinds of bpf-to-bpf call are linked.
* **BPF helpers** are called through a constant integer cast to a pointer; the helper id is
  the UAPI ``BPF_FUNC_*`` number (1 = map_lookup_elem, 2 = map_update_elem,
  3 = map_delete_elem, 6 = trace_printk, 113 = probe_read_kernel, 201 = dynptr_read…)::

      %v = call ptr inttoptr (i64 1 to ptr)(ptr @counters, ptr %key)

  LLVM emits ``call 1`` — no relocation.
* **Maps** are referenced as an *external global whose name equals MapSpec.name*; any
  type will do (``i8`` is simplest), only its address is used::

      @counters = external global i8

  LLVM emits ``ld_imm64 r1, 0`` with an R_BPF_64_64 relocation against ``counters``;
  elf.py rewrites it to ``src_reg=BPF_PSEUDO_MAP_IDX, imm=<index in ProgramSpec.maps>``.
* **kfuncs** (e.g. ``bpf_xdp_ct_lookup``, ``bpf_dynptr_from_skb``) are *declared* external
  functions called directly::

      declare ptr @bpf_xdp_ct_lookup(ptr, ptr, i32, ptr, i32)

  LLVM emits ``call -1`` with an R_BPF_64_32 relocation; elf.py sets
  ``src_reg=BPF_PSEUDO_KFUNC_CALL`` and ``imm`` = the kfunc's BTF id in vmlinux.

* **Global data** (``internal constant`` tables, ``global`` variables) is allowed: elf.py
  turns each .rodata*/.data*/.bss* section into a one-entry ARRAY map appended to the
  spec's maps (``create_maps(spec)`` in program.py makes them with their contents).
  Note LLVM drops store-only internal globals; use non-internal ones for outputs.
* **Stack**: every ``alloca`` must be in the entry block (the BPF backend has no dynamic
  stack allocation: "unsupported dynamic stack allocation"); 512 bytes in total.
* **Alignment**: compile_ir puts the BPF data layout into the text before parsing, so
  loads/stores without ``align`` get natural alignment. An access with a smaller
  ``align`` is split into narrower ones — fine on packet bytes, refused by the verifier
  on pointer members of kernel structs (load ``ptr``/``i64`` fields with align 8).
* The verifier needs bounds checks on packet pointers (``data + n <= data_end``) before
  every direct packet access in XDP/TC; netfilter programs read packets through
  dynptr kfuncs/helpers instead (see program.py NOTES).

Tiny complete example: ``EXAMPLE_XDP_IR`` below (an XDP program returning the u32
stored at key 0 of map ``verdicts``, XDP_PASS if absent), loaded with::

    text = EXAMPLE_XDP_IR
    obj = compile_ir(text)
    spec = program_spec_from_elf(obj, "xdp", "xdp_main", BPF_PROG_TYPE_XDP, BPF_XDP,
                                 [MapSpec("verdicts", BPF_MAP_TYPE_ARRAY, 4, 4, 1)])
"""

from __future__ import annotations

import functools

import llvmlite.binding as llvm
from llvmlite import ir

# The example of the module docstring (tests compile and run it).
EXAMPLE_XDP_IR = r"""
@verdicts = external global i8

define i32 @xdp_main(ptr %ctx) nounwind section "xdp" {
entry:
  %k = alloca i32
  store i32 0, ptr %k
  %v = call ptr inttoptr (i64 1 to ptr)(ptr @verdicts, ptr %k)
  %miss = icmp eq ptr %v, null
  br i1 %miss, label %pass, label %hit
hit:
  %x = load i32, ptr %v
  ret i32 %x
pass:
  ret i32 2
}
"""

TRIPLE = "bpfel"
#: BPF ISA level: v3 = 32-bit subregisters + jmp32 + atomics; kernel >= 5.1 accepts it.
DEFAULT_CPU = "v3"


@functools.cache
def _target_machine(cpu: str, opt: int) -> llvm.TargetMachine:
    # llvmlite 0.50: llvm.initialize() is deprecated (automatic); the BPF target and its
    # asm printer still need registering, or from_triple() finds no target.
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    target = llvm.Target.from_triple(TRIPLE)
    return target.create_target_machine(cpu=cpu, opt=opt, reloc="static", codemodel="default")


def _with_target(text: str, layout: str) -> str:
    """Put the BPF triple and data layout in the text *before* parsing: the parser fixes the
    alignment of every ``load``/``store`` without ``align`` from the layout it sees, and
    LLVM's default layout gives i64 only 4-byte alignment — the BPF backend then splits
    such accesses into two 32-bit ones, which the verifier refuses on kernel pointers."""
    lines = [ln for ln in text.splitlines()
             if not ln.startswith(("target datalayout", "target triple"))]
    return f'target datalayout = "{layout}"\ntarget triple = "{TRIPLE}"\n' + "\n".join(lines)


def _parse(module: ir.Module | str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    text = _with_target(str(module), str(tm.target_data))
    mod = llvm.parse_assembly(text)
    mod.triple = TRIPLE
    mod.data_layout = str(tm.target_data)
    mod.verify()
    return mod


def _optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt: int) -> None:
    """LLVM's standard O<opt> module pipeline through the new pass manager."""
    if opt <= 0:
        return
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def optimized_ir(module: ir.Module | str, opt: int = 2, cpu: str = DEFAULT_CPU) -> str:
    """The IR after optimization: for reading what codegen really produced."""
    tm = _target_machine(cpu, opt)
    mod = _parse(module, tm)
    _optimize(mod, tm, opt)
    return str(mod)


def compile_ir(module: ir.Module | str, opt: int = 2, cpu: str = DEFAULT_CPU) -> bytes:
    """Compile LLVM IR to a relocatable little-endian BPF ELF object.

    Pure and deterministic: same IR, same bytes. Raises RuntimeError (from llvmlite) on
    invalid IR.
    """
    tm = _target_machine(cpu, opt)
    mod = _parse(module, tm)
    _optimize(mod, tm, opt)
    return bytes(tm.emit_object(mod))


def assembly(module: ir.Module | str, opt: int = 2, cpu: str = DEFAULT_CPU) -> str:
    """BPF assembly text of the module, for debugging codegen."""
    tm = _target_machine(cpu, opt)
    mod = _parse(module, tm)
    _optimize(mod, tm, opt)
    return str(tm.emit_assembly(mod))
