"""The in-process host: everything between a ``Host.run`` call and wasmtime, in layers.

- ``host``: the :class:`Host` (loading, and the run/call/stream/run_async
  entry points), over
- ``running``: one run as a scope, its outcome, and what it concludes in;
  core modules and components as strategies; the guest's stdio; over
- ``values``: modules, host functions, WIT types, components, WAVE; over
- ``engines``: engines, the compile cache, memory caps, timeouts, the WASI
  calls answered before wasmtime's, wasmtime's failures, and the wasmtime-py
  shims (``capi``).

``result`` (what a run returns) is a leaf every layer may use. A layer
imports only the layers below it (``tests/test_layout.py`` checks), and the
host as a whole only the shared leaves (``wasmhost._errors``, ``_files``, ...).
"""
