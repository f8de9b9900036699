// narinfo and nix-cache-info request rates and latency, beside nginx serving the same `.narinfo`
// files from a `file://` binary cache (written by `nix copy --to file://…`), in the same run.
//   rate:    autocannon, 16 connections (--connections), --duration seconds per case, after
//            --warmup seconds (default 2) that are not counted, for nginx and atticd alike: the
//            first seconds of a fresh atticd measure V8 compiling the request path, not serving it
//   latency: one keep-alive connection, requests in sequence (--sequential of them)
// Cases: public cache hit, private cache hit with a token, public miss (404), nix-cache-info.
//
//   node bench/narinfo.ts [--backends sqlite-local,postgres-s3] [--duration 10] [--warmup 2] [--connections 16] [--sequential 5000]
//                         [--cpu-prof DIR]   (atticd's CPU profile, every thread, into DIR/<backend>;
//                                             summarize with node bench/lib/cpu-profile.ts FILE --requests N)
//                         [--cases public,token,miss,cache-info] [--only rate|sequential|both] [--no-anchor]
//                                            (one case and one mode: a profile of that alone)
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { addToStore, nix, NIX_OPTS, startBenchServer } from "./lib/atticd.ts";
import { cpuSeconds, withChildren } from "./lib/cpu.ts";
import { startNginx } from "./lib/nginx.ts";
import { stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    backends: { type: "string", default: "sqlite-local" },
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    connections: { type: "string", default: "16" },
    sequential: { type: "string", default: "5000" },
    "cpu-prof": { type: "string" },
    /** a subset of: public, token, miss, cache-info (profiles of one case) */
    cases: { type: "string", default: "public,token,miss,cache-info" },
    /** rate (16 connections), sequential (one connection), or both */
    only: { type: "string", default: "both" },
    /** skip the nginx anchor (profiling runs only: no ratios) */
    "no-anchor": { type: "boolean", default: false },
  },
});
const duration = Number(values.duration);
const warmup = Number(values.warmup);
const connections = Number(values.connections);
const sequentialCount = Number(values.sequential);
const cases = new Set(values.cases!.split(","));
const doRate = values.only !== "sequential";
const doSequential = values.only !== "rate";

interface Row {
  name: string;
  rps: number;
  p99: number;
  mean?: number;
  p50?: number;
  seqP99?: number;
  /** server CPU time per request during the sequential run, in µs (robust to a busy machine) */
  cpu?: number;
}



async function rate(url: string, headers: Record<string, string> = {}, expect = 200): Promise<{ rps: number; p99: number }> {
  if (warmup > 0) await autocannon({ url, connections, duration: warmup, headers });
  const result = await autocannon({ url, connections, duration, headers });
  const wrong = result.non2xx && expect === 200 ? result.non2xx : 0;
  if (result.errors > 0 || wrong > 0) throw new Error(`${url}: ${result.errors} errors, ${result.non2xx} non-2xx`);
  return { rps: result.requests.average, p99: result.latency.p99 };
}

/** One keep-alive connection, requests in sequence: mean, p50, p99 in microseconds. */
async function sequential(url: string, headers: Record<string, string> = {}, expect = 200): Promise<{ mean: number; p50: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const one = () =>
    new Promise<number>((resolve, reject) => {
      const start = process.hrtime.bigint();
      const req = request(url, { agent, headers }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== expect) reject(new Error(`${url}: ${res.statusCode}`));
          else resolve(Number(process.hrtime.bigint() - start) / 1000);
        });
      });
      req.on("error", reject);
      req.end();
    });
  for (let i = 0; i < 200; i++) await one(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < sequentialCount; i++) times.push(await one());
  agent.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { mean: times.reduce((a, b) => a + b, 0) / times.length, p50: at(0.5), p99: at(0.99) };
}

async function measure(name: string, url: string, pids: number[], headers: Record<string, string> = {}, expect = 200): Promise<Row> {
  const r = doRate ? await rate(url, headers, expect) : { rps: NaN, p99: NaN };
  const cpuBefore = cpuSeconds(pids);
  const s = doSequential ? await sequential(url, headers, expect) : { mean: NaN, p50: NaN, p99: NaN };
  const cpu = ((cpuSeconds(pids) - cpuBefore) / (sequentialCount + 200)) * 1e6;
  const row = { name, rps: r.rps, p99: r.p99, mean: s.mean, p50: s.p50, seqP99: s.p99, cpu };
  console.log(
    `${name.padEnd(40)} ${row.rps.toFixed(0).padStart(7)} req/s  p99 ${row.p99.toFixed(1).padStart(5)} ms | one connection: mean ${s.mean.toFixed(0)} µs, p50 ${s.p50.toFixed(0)} µs, p99 ${s.p99.toFixed(0)} µs | server CPU ${cpu.toFixed(0)} µs/request`,
  );
  return row;
}

const work = mkdtempSync(join(tmpdir(), "attic-bench-narinfo-"));
try {
  const folder = join(work, "tree");
  mkdirSync(folder);
  writeFileSync(join(folder, "hello.txt"), `narinfo bench ${Date.now()}\n`);
  const info = addToStore(folder);
  const hash = info.path.slice(11, 43);
  const missing = "0".repeat(32);

  // anchor: nginx serving Nix's own file:// cache
  const refCache = join(work, "ref-cache");
  nix(["nix", "copy", "--to", `file://${refCache}?compression=zstd`, info.path, ...NIX_OPTS]);
  const nginx = await startNginx(refCache, "ref");
  const rows: Row[] = [];
  try {
    const pids = withChildren(nginx.pid);
    if (!values["no-anchor"]) {
      rows.push(await measure("nginx .narinfo", `${nginx.url}/${hash}.narinfo`, pids));
      rows.push(await measure("nginx nix-cache-info", `${nginx.url}/nix-cache-info`, pids));
    }
  } finally {
    await nginx.stop();
  }

  for (const spec of values.backends!.split(",")) {
    const prof = values["cpu-prof"] ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values["cpu-prof"]}/${spec}` } : {};
    const server = await startBenchServer(spec, { type: "zstd", level: 3 }, "", prof);
    try {
      await server.createCache("pub", true);
      await server.createCache("priv", false);
      await server.push("pub", info);
      await server.push("priv", info);
      const auth = { authorization: `Bearer ${server.token}` };
      const pids = [server.proc.child.pid!];
      if (cases.has("public")) rows.push(await measure(`atticd ${spec} narinfo public`, `${server.url}/pub/${hash}.narinfo`, pids));
      if (cases.has("token")) rows.push(await measure(`atticd ${spec} narinfo private+token`, `${server.url}/priv/${hash}.narinfo`, pids, auth));
      if (cases.has("miss")) rows.push(await measure(`atticd ${spec} narinfo public miss`, `${server.url}/pub/${missing}.narinfo`, pids, {}, 404));
      if (cases.has("cache-info")) rows.push(await measure(`atticd ${spec} nix-cache-info public`, `${server.url}/pub/nix-cache-info`, pids));
      console.log(`atticd ${spec}: peak RSS ${(server.proc.peakRss() / 2 ** 20).toFixed(0)} MiB`);
    } finally {
      await server.stop();
    }
  }
  await stopBackendServices();

  if (!values["no-anchor"]) printRatios(rows);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** Each of ours beside its nginx anchor of the same run. */
function printRatios(rows: Row[]): void {
  const anchor = rows[0]!;
  const cacheInfoAnchor = rows[1]!;
  console.log("\nagainst nginx (rate: ours / nginx's, higher is better; one connection: our time / nginx's, mean and p50, lower is better)");
  for (const r of rows.slice(2)) {
    const a = r.name.includes("nix-cache-info") ? cacheInfoAnchor : anchor;
    console.log(
      `${r.name.padEnd(40)} rate ${(r.rps / a.rps).toFixed(2)}x  one-connection time ${(r.mean! / a.mean!).toFixed(2)}x (p50 ${(r.p50! / a.p50!).toFixed(2)}x)  server CPU per request ${(r.cpu! / a.cpu!).toFixed(2)}x`,
    );
  }
}
