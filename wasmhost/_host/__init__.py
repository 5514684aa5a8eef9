"""The in-process host: everything between a ``Host.run`` call and wasmtime.

``host`` (Host: loading, and the run/call/stream/run_async entry points),
``run`` (one run as a scope that holds and releases what it uses, its
outcome, and the result or exception it concludes in), ``kinds`` (core
modules and components as strategies: checked, linked, called),
``failures`` (wasmtime's errors and traps read in one place), ``engine``
(engines and their pooled twins), ``module`` (reading and describing
modules), ``functions`` (host functions
and import checks), ``stdio`` (the guest's stdin, stdout and stderr),
``watchdog`` and ``poll`` (timeouts and cancellation), ``memory`` (memory
caps), ``cache`` (the compile cache), ``result`` (what a run returns),
``capi`` (the wasmtime C-API calls wasmtime-py does not wrap),
``component`` (components' exports and runs), ``wit`` (what wasmhost knows of
each WIT type, one table) and ``wave`` (component values as text, public as
``wasmhost.wave``).
Imports only the shared leaves (``wasmhost._errors``, ``_files``, ...).
"""
