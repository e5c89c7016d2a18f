"""Loader: everything between an ELF object and live kernel objects.

Modules (imported individually so that importing the package pulls in neither llvmlite
nor vmlinux BTF): ``syscall`` (raw bpf(2), UAPI constants, BpfError), ``maps``
(MapSpec/Map), ``program`` (ProgramSpec/Program, test_run, netfilter NOTES),
``elf`` (link a program out of llvmlite's object), ``btf`` (vmlinux BTF queries),
``toolchain`` (LLVM IR → BPF ELF; the IR conventions codegen follows), ``bpffs``.
"""
