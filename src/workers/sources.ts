// Run from the TypeScript sources (tests, `npm start`), every isolate that loads a .ts module
// loads Node's type stripper (a WebAssembly module: some 17 MiB of RSS per isolate, kept for the
// isolate's life). The pool's workers need not: the main thread, which has it loaded anyway,
// strips the worker's module graph once, and each worker takes the stripped sources through a
// module load hook (`registerHooks`, in the worker's own thread) instead of stripping them again.
// A module the graph walk missed still loads, stripped by Node as usual. From dist/ (emitted .js)
// none of this runs, nor with Node's compile cache on (NODE_COMPILE_CACHE, as `npm start` and the
// tests set it): a worker then loads its modules from the cache, and only a module not yet in it
// (the first run after an edit) is stripped, in that worker.
import { readFileSync } from "node:fs";
import * as nodeModule from "node:module";

/** Node's compile cache is on for this process (its workers use it too). */
export function compileCacheOn(): boolean {
  const get = (nodeModule as { getCompileCacheDir?: () => string | undefined }).getCompileCacheDir;
  return typeof get === "function" && get() !== undefined;
}

/** relative .ts specifiers of static imports, re-exports and dynamic imports */
const RELATIVE_TS = /(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+\.ts)["']/g;

type Strip = (code: string, options?: { mode?: "strip" }) => string;

/** `entry`'s module graph (its relative .ts imports, transitively), each as JavaScript, by URL; null when Node cannot strip types. */
export function strippedGraph(entry: URL): [string, string][] | null {
  const strip = (nodeModule as { stripTypeScriptTypes?: Strip }).stripTypeScriptTypes;
  if (!strip || !("registerHooks" in nodeModule)) return null;
  const out = new Map<string, string>();
  const todo = [entry.href];
  // the API warns once that it is experimental: not worth a line in the server's log
  const warn = process.emitWarning;
  process.emitWarning = () => {};
  try {
    for (let href = todo.pop(); href !== undefined; href = todo.pop()) {
      if (out.has(href)) continue;
      const source = readFileSync(new URL(href), "utf8");
      out.set(href, strip(source, { mode: "strip" }));
      for (const m of source.matchAll(RELATIVE_TS)) todo.push(new URL(m[1]!, href).href);
    }
  } catch {
    return null;
  } finally {
    process.emitWarning = warn;
  }
  return [...out];
}

/** A worker's bootstrap (eval'd, CommonJS): installs the load hook over `workerData.sources`, then imports `workerData.entry`. */
export const BOOTSTRAP = `
const { registerHooks } = require("node:module");
const { workerData } = require("node:worker_threads");
const sources = new Map(workerData.sources);
registerHooks({
  load(url, context, next) {
    const source = sources.get(url);
    return source === undefined ? next(url, context) : { format: "module", source, shortCircuit: true };
  },
});
import(workerData.entry).catch((err) => { setImmediate(() => { throw err; }); });
`;
