"""The in-process host: everything between a ``Host.run`` call and wasmtime.

``host`` (Host, runs, streams), ``engine`` (engines and their pooled twins),
``module`` (reading and describing modules), ``functions`` (host functions
and import checks), ``stdio`` (the guest's stdin, stdout and stderr),
``watchdog`` and ``poll`` (timeouts and cancellation), ``memory`` (memory
caps), ``cache`` (the compile cache), ``result`` (what a run returns),
``capi`` (the wasmtime C-API calls wasmtime-py does not wrap),
``component`` (components' exports and runs), ``wit`` (what wasmhost knows of
each WIT type, one table) and ``wave`` (component values as text, public as
``wasmhost.wave``).
Imports only the shared leaves (``wasmhost._errors``, ``_files``, ...).
"""
