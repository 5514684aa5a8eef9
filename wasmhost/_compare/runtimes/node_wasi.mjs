// Runs one WASI preview1 module under node:wasi, for `wasmhost compare`.
// Usage: node --no-warnings node_wasi.mjs '{"module": ..., "args": [...], "env": {...}, "preopens": {...}}'
// The guest's argv[0] is the module's file name, as under the other runtimes.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { argv, exit } from 'node:process';
import { WASI } from 'node:wasi';

const spec = JSON.parse(argv[2]);
const wasi = new WASI({
  version: 'preview1',
  args: [basename(spec.module), ...spec.args],
  env: spec.env,
  preopens: spec.preopens,
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(spec.module));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
