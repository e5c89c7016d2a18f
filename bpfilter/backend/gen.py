"""A thin layer over llvmlite's IRBuilder for BPF programs.

Why: every matcher and flavor needs the same few idioms (stack buffers, big-endian
field loads, helper calls through a constant address, map references by symbol);
keeping them here lets those modules read like the iptables semantics they implement.
"""

from __future__ import annotations

from llvmlite import ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()

# UAPI BPF_FUNC_* helper ids.
BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_skb_load_bytes = 26
BPF_FUNC_fib_lookup = 69
BPF_FUNC_xdp_get_buff_len = 188
BPF_FUNC_xdp_load_bytes = 189
BPF_FUNC_dynptr_read = 201


class Gen:
    """Builder for one program function, with blocks for the final verdicts."""

    def __init__(self, module: ir.Module, func: ir.Function) -> None:
        self.module = module
        self.func = func
        self._entry = func.append_basic_block("entry")
        self.b = ir.IRBuilder(self._entry)
        self._globals: dict[str, ir.GlobalVariable] = {}
        self._kfuncs: dict[str, ir.Function] = {}
        self._n = 0

    # --- blocks and control flow -------------------------------------------------
    def block(self, name: str) -> ir.Block:
        self._n += 1
        return self.func.append_basic_block(f"{name}.{self._n}")

    def at(self, block: ir.Block) -> None:
        self.b.position_at_end(block)

    def branch_if(self, cond: ir.Value, then: ir.Block, name: str = "cont") -> None:
        """Go to `then` when cond is true, else continue in a fresh block."""
        cont = self.block(name)
        self.b.cbranch(cond, then, cont)
        self.at(cont)

    def require(self, cond: ir.Value, fail: ir.Block, name: str = "ok") -> None:
        """Continue only when cond is true, else go to `fail`."""
        cont = self.block(name)
        self.b.cbranch(cond, cont, fail)
        self.at(cont)

    # --- memory ------------------------------------------------------------------
    def stack(self, size: int, name: str, zero: bool = True) -> ir.Value:
        """A zeroed, 8-aligned stack buffer allocated in the entry block."""
        size = (size + 7) & ~7
        cur = self.b.block
        self.b.position_at_start(self._entry)
        buf = self.b.alloca(ir.ArrayType(I8, size), name=name)
        buf.align = 8
        buf.type = PTR  # llvmlite types allocas as [N x i8]*; we address bytes via `ptr`
        self.b.position_at_end(cur)
        if zero:
            for off in range(0, size, 8):
                self.b.store(I64(0), self.ptr(buf, off), align=8)
        return buf

    def ptr(self, base: ir.Value, off: int | ir.Value) -> ir.Value:
        idx = I64(off) if isinstance(off, int) else off
        if isinstance(off, int) and off == 0:
            return base
        return self.b.gep(base, [idx], source_etype=I8)

    def load(self, base: ir.Value, off: int | ir.Value, ty: ir.IntType, align: int = 1
             ) -> ir.Value:
        return self.b.load(self.ptr(base, off), typ=ty, align=align)

    def u8(self, base: ir.Value, off: int | ir.Value) -> ir.Value:
        """Byte at base+off as i32."""
        return self.b.zext(self.load(base, off, I8), I32)

    def be16(self, base: ir.Value, off: int | ir.Value) -> ir.Value:
        """Big-endian 16-bit field at base+off as i32 (host order)."""
        hi = self.u8(base, off)
        lo = self.u8(base, off + 1 if isinstance(off, int) else self.b.add(off, I64(1)))
        return self.b.or_(self.b.shl(hi, I32(8)), lo)

    def raw32(self, base: ir.Value, off: int) -> ir.Value:
        """32 bits at base+off in memory order, for comparing with `wire32` constants."""
        return self.load(base, off, I32, align=4 if off % 4 == 0 else 1)

    def opaque(self, v: ir.Value) -> ir.Value:
        """`v` through an empty asm (clang's barrier_var): LLVM forgets what it knew
        about it, so range checks written afterwards stay where the verifier needs them."""
        fnty = ir.FunctionType(v.type, [v.type])
        return self.b.asm(fnty, "", "=r,0", [v], side_effect=True)

    # --- calls ---------------------------------------------------------------------
    def helper(self, helper_id: int, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        """Call BPF helper `helper_id` (LLVM emits `call <id>`)."""
        fnty = ir.FunctionType(ret, [a.type for a in args])
        callee = I64(helper_id).inttoptr(PTR)
        callee.function_type = fnty  # llvmlite reads the signature from the callee
        return self.b.call(callee, args)

    def kfunc(self, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        """Call kernel function `name` (an external symbol the ELF reader resolves)."""
        fn = self._kfuncs.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, [a.type for a in args]), name)
            fn.linkage = "external"
            self._kfuncs[name] = fn
        return self.b.call(fn, args)

    def map_ref(self, name: str) -> ir.GlobalVariable:
        """The address of map `name`: an external global the ELF reader relocates."""
        g = self._globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, I8, name)
            g.linkage = "external"
            self._globals[name] = g
        return g


def wire32(packed: bytes) -> int:
    """A 4-byte network-order value as the i32 a little-endian load of it yields."""
    return int.from_bytes(packed, "little")
