"""``wasmhost-runtime``, the OCI runtime engines call for Wasm containers.

``main`` (the command line and the commands that only read and signal: state, start,
kill, delete), ``create`` (Wasm or native; the init forked), ``init`` (the container's
process: namespaces, cgroup, the guest run through :class:`wasmhost.Host`), ``spec``
(config.json checked and planned), ``state`` (what is kept under the root), and
``linux`` (what Python's ``os`` lacks).
"""
