// What the per-request metrics cost on the hot path, measured alone (a loaded machine makes the
// end-to-end narinfo figures too noisy to see a microsecond): the onResponse hook's
// observeRequest() for a narinfo hit, and the narinfo counter, per call.
//
//   node bench/metrics-overhead.ts [--calls 2000000]
import { parseArgs } from "node:util";
import { createMetrics } from "../src/server/metrics.ts";

const { values } = parseArgs({ options: { calls: { type: "string", default: "2000000" } } });
const calls = Number(values.calls);
const metrics = createMetrics();

function perCall(name: string, fn: (i: number) => void): void {
  for (let i = 0; i < 100_000; i++) fn(i); // warm up
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn(i);
    runs.push(Number(process.hrtime.bigint() - start) / calls);
  }
  runs.sort((a, b) => a - b);
  console.log(`${name}: ${runs[2]!.toFixed(0)} ns per call (median of 5 × ${calls}; best ${runs[0]!.toFixed(0)} ns)`);
}

perCall("observeRequest (narinfo hit: route /:cache/:file, GET, 200)", (i) => metrics.observeRequest("/:cache/:file", "GET", 200, 0.0003 + (i % 7) * 1e-5));
perCall("inc attic_narinfo_requests_total{result=hit}", () => metrics.inc("attic_narinfo_requests_total", 1, { result: "hit" }));
const render = performance.now();
await metrics.render();
console.log(`render /metrics (no database source): ${(performance.now() - render).toFixed(2)} ms`);
