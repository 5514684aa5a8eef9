"""What guests are and take: modules, host functions, WIT types, components, WAVE.

``module`` (reading and describing modules), ``functions`` (host functions
and import checks), ``wit`` (what wasmhost knows of each WIT type, one
table), ``component`` (components' exports, values and runs) and ``wave``
(component values as text, public as ``wasmhost.wave``). Imports ``engines``,
never ``running``.
"""
