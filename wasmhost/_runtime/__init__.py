"""``wasmhost-runtime``, the OCI runtime engines call for Wasm containers.

``main`` (the commands that only read and signal: state, start, kill, delete),
``command`` (runc's command line, parsed), ``create`` (Wasm or native; the init
forked), ``native`` (runc or crun in this process's place), ``init`` (the container's
process: namespaces, cgroup, the guest run through :class:`wasmhost.Host`), ``spec``
(config.json checked and planned), ``state`` (what is kept under the root), and
``linux`` (what Python's ``os`` lacks).
"""
