"""WAVE, the WebAssembly Value Encoding: a component function's call and result as text.

WAVE is the value syntax of the wasmtime CLI (``wasmtime run --invoke
'f(ARGS)'``) and of ``wasmhost run --invoke``: ``true``, ``-7``, ``1.5``,
``'c'``, ``"text"``, ``[1, 2]``, ``(1, "a")``, ``{field: 1}``,
``some(1)``/``none``, ``ok(1)``/``err("e")``, ``case(payload)``,
``{flag-a, flag-b}``. Values are read for the types of the function they are
for, into the Python values :meth:`Host.run <wasmhost.Host.run>` takes and
returns for components (see the README), and printed back byte for byte as
the wasmtime CLI prints them:

>>> from wasmhost import Host, wave
>>> host = Host()
>>> calc = host.load("artifacts/calc.component.wasm")
>>> name, args = wave.parse(calc, "summarize([1.5, 2.5])")
>>> result = host.call(calc, name, *args)
>>> wave.format(calc, name, result.values[0])
'{count: 2, mean: some(2)}'

Text that is not a call of the function, or not values of its parameters'
types, raises :class:`WaveError` (a :class:`~wasmhost.ConfigError`), which
says where.
"""

from ._host.values.wave import WaveError, format, parse

__all__ = ["WaveError", "format", "parse"]
