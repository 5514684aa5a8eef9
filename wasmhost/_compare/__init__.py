"""``wasmhost compare``: one module in-process and in external runtimes.

``compare`` (runs, checks outputs byte for byte, times), ``runtimes`` (one
adapter per external runtime: wasmtime, WasmEdge, wasmer, iwasm, node).
"""
