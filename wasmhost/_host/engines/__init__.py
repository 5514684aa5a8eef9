"""wasmtime's side of the host: engines, the compile cache, and what wasmtime calls back.

``engine`` (engines and their pooled twins), ``cache`` (compiled modules on
disk), ``memory`` (memory caps, through a memory creator), ``watchdog`` and
``poll`` (timeouts and cancellation, through epoch callbacks), ``wasi`` (the
WASI calls answered before wasmtime's), ``failures`` (wasmtime's errors and
traps, read in one place) and ``capi`` (what wasmhost takes from wasmtime-py
beyond its public API). Imports neither ``values`` nor ``running``.
"""
