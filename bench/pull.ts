// Pull throughput of one large store path from atticd, beside nginx serving Nix's own `file://`
// binary cache of the same path (the same zstd level on both sides), in the same run:
//   curl:  one connection, the NAR (`.nar.zst` from nginx, `/nar/<hash>.nar` from atticd), MB/s
//   nix:   `nix-store --store <fresh dir> -r <path>` with the cache as the only substituter, s
// each with a warm page cache (after a warm-up fetch) and a cold one (`sync; echo 3 >
// /proc/sys/vm/drop_caches`, root only; skipped otherwise). Cases are interleaved, anchor
// first, so a noisy machine hits both sides alike; every figure is printed, then the ratios.
//
//   node bench/pull.ts [--path /usr/lib/jvm] [--backends sqlite-local,postgres-s3] [--runs 2] [--level 3]
//                      [--only curl|nix] [--cpu-prof DIR]   (--cpu-prof: atticd writes a profile there on exit)
//                      [--storage-extra "packs = false"] [--restart]
// --restart: atticd is restarted after the push, so the pulls (and the RSS at rest printed at the
// end) are those of a process that has only served.
// Beside each of atticd's figures: the CPU seconds its threads spent on the case (its warm-up
// fetch included): main, each worker of the pool, libuv (the thread pool), v8.
// Printed too, per backend: the S3 requests (by method, counted at a proxy in front of the S3
// server) and the files written under the storage folder to push the path, and the S3 requests
// to serve its NAR once (docs/packs.md).
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, nix, NIX_ENV, NIX_OPTS, startBenchServer, type BenchServer } from "./lib/atticd.ts";
import { formatThreadCpu, threadCpu, threadCpuDelta, type ThreadCpu } from "./lib/threads.ts";
import { startNginx, type Nginx } from "./lib/nginx.ts";
import { stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    runs: { type: "string", default: "2" },
    level: { type: "string", default: "3" },
    only: { type: "string" },
    "cpu-prof": { type: "string" },
    /** extra `[storage]` lines for atticd, e.g. "packs = false" (upstream's one object per chunk) */
    "storage-extra": { type: "string", default: "" },
    restart: { type: "boolean", default: false },
  },
});
const MB = 1e6;
const execFileAsync = promisify(execFile);
const runs = Number(values.runs);
const level = Number(values.level);
const canDropCaches = process.getuid?.() === 0;

function dropCaches(): void {
  execFileSync("sync");
  writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

// Asynchronous: with S3 the request-counting proxy runs in this process, and must keep serving.
async function curlSpeed(url: string): Promise<number> {
  const { stdout: out } = await execFileAsync("curl", ["-s", "-f", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}", url], { encoding: "utf8" });
  const [speed, size] = out.trim().split(" ").map(Number);
  if (!size) throw new Error(`curl ${url}: nothing downloaded`);
  return speed! / MB;
}

/** Seconds for Nix to substitute `storePath` from `cacheUrl` into a fresh store. */
async function nixPull(work: string, cacheUrl: string, storePath: string): Promise<number> {
  const dir = mkdtempSync(join(work, "store-"));
  const home = join(dir, "home"); // no narinfo disk cache from an earlier run
  mkdirSync(home);
  const start = process.hrtime.bigint();
  await execFileAsync(
    "nix-store",
    ["--store", join(dir, "root"), "-r", storePath, "--option", "substituters", cacheUrl, "--option", "require-sigs", "false", ...NIX_OPTS.slice(0, 3)],
    { env: { ...NIX_ENV, XDG_CACHE_HOME: home } },
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

/** A process's resident set (VmRSS, MiB) and thread count now. */
function restingState(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return `RSS ${(field("VmRSS") / 1024).toFixed(1)} MiB, ${field("Threads")} threads`;
}

function requestsSince(before: Record<string, number>, now: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [method, n] of Object.entries(now)) if (n - (before[method] ?? 0) > 0) out[method] = n - (before[method] ?? 0);
  return out;
}

function show(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? "none" : entries.map(([m, n]) => `${m} ${n}`).join(", ");
}

interface Side {
  name: string;
  cacheUrl: string;
  narUrl: string;
  /** atticd's pid: its CPU per thread kind is printed beside each figure */
  pid?: number;
}

/** CPU seconds atticd's threads spent since `before` (lib/threads.ts: main, each worker, libuv, v8). */
function cpuSince(pid: number, before: ThreadCpu[]): string {
  const { total, parts } = threadCpuDelta(pid, before, threadCpu(pid));
  return `   atticd CPU ${total.toFixed(2)} s: ${formatThreadCpu(parts.filter(([, s]) => s >= 0.01))}`;
}

async function narUrlOf(cacheUrl: string, hash: string): Promise<string> {
  const text = await (await fetch(`${cacheUrl}/${hash}.narinfo`)).text();
  const m = /^URL: (.+)$/m.exec(text);
  if (!m) throw new Error(`${cacheUrl}: no URL in narinfo:\n${text}`);
  return `${cacheUrl}/${m[1]}`;
}

const work = mkdtempSync(join(tmpdir(), "attic-bench-pull-"));
const servers: BenchServer[] = [];
let nginx: Nginx | undefined;
try {
  const info = addToStore(values.path!);
  const hash = info.path.slice(11, 43);
  console.log(`path: ${info.path} (NAR ${(info.narSize / MB).toFixed(1)} MB), zstd level ${level} on both sides`);
  const refCache = join(work, "ref-cache");
  nix(["nix", "copy", "--to", `file://${refCache}?compression=zstd&compression-level=${level}`, info.path, ...NIX_OPTS]);
  nginx = await startNginx(refCache, "ref");
  const sides: Side[] = [{ name: "nginx file://", cacheUrl: nginx.url, narUrl: await narUrlOf(nginx.url, hash) }];
  for (const spec of values.backends!.split(",")) {
    const env = values["cpu-prof"] ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(values["cpu-prof"], spec)}` } : {};
    const server = await startBenchServer(spec, { type: "zstd", level }, "", env, values["storage-extra"]);
    servers.push(server);
    await server.createCache("pub", true);
    const beforePush = server.s3Requests();
    await server.push("pub", info);
    const pushed = requestsSince(beforePush, server.s3Requests());
    if (values.restart) await server.restart();
    const cacheUrl = `${server.url}/pub`;
    const narUrl = await narUrlOf(cacheUrl, hash);
    const beforeServe = server.s3Requests();
    await curlSpeed(narUrl);
    const served = requestsSince(beforeServe, server.s3Requests());
    console.log(
      `atticd ${spec}: push: S3 requests ${show(pushed)}, files under the storage folder ${server.storageFiles()}; ` +
        `serving the NAR once: S3 requests ${show(served)} (GET+HEAD ${(served.GET ?? 0) + (served.HEAD ?? 0)})`,
    );
    const side: Side = { name: `atticd ${spec}`, cacheUrl, narUrl };
    // a getter: --restart may have started another process
    Object.defineProperty(side, "pid", { get: () => server.proc.child.pid, enumerable: true });
    sides.push(side);
  }

  type Case = { name: string; unit: "MB/s" | "s"; measure(side: Side): Promise<number> };
  const cases: Case[] = [];
  if (values.only !== "nix") {
    cases.push({ name: "curl NAR, warm", unit: "MB/s", measure: async (s) => (await curlSpeed(s.narUrl), curlSpeed(s.narUrl)) });
    if (canDropCaches) cases.push({ name: "curl NAR, cold", unit: "MB/s", measure: (s) => (dropCaches(), curlSpeed(s.narUrl)) });
  }
  if (values.only !== "curl") {
    cases.push({ name: "nix-store -r, warm", unit: "s", measure: async (s) => (await curlSpeed(s.narUrl), nixPull(work, s.cacheUrl, info.path)) });
    if (canDropCaches) cases.push({ name: "nix-store -r, cold", unit: "s", measure: (s) => (dropCaches(), nixPull(work, s.cacheUrl, info.path)) });
  }
  if (!canDropCaches) console.log("not root: cold page cache cases skipped");

  const results = new Map<string, number[]>();
  for (let run = 1; run <= runs; run++) {
    for (const c of cases) {
      for (const side of sides) {
        const cpuBefore = side.pid ? threadCpu(side.pid) : [];
        const value = await c.measure(side);
        const cpu = side.pid ? cpuSince(side.pid, cpuBefore) : "";
        const key = `${c.name}|${side.name}`;
        results.set(key, [...(results.get(key) ?? []), value]);
        console.log(`run ${run}  ${c.name.padEnd(20)} ${side.name.padEnd(22)} ${value.toFixed(c.unit === "s" ? 2 : 0).padStart(7)} ${c.unit}${cpu}`);
      }
    }
  }
  for (const server of servers) console.log(`${server.url}: peak RSS ${(server.proc.peakRss() / 2 ** 20).toFixed(0)} MiB`);
  // at rest after the runs: the pool's workers (spawned by the push and the pulls) are still there
  await sleep(3000);
  for (const server of servers) console.log(`${server.url}: at rest 3 s after the last request: ${restingState(server.proc.child.pid!)}`);

  console.log("\nratio to nginx, per run (higher is better: speed ours/nginx, time nginx/ours)");
  for (const c of cases) {
    const anchor = results.get(`${c.name}|${sides[0]!.name}`)!;
    for (const side of sides.slice(1)) {
      const ours = results.get(`${c.name}|${side.name}`)!;
      const ratios = ours.map((v, i) => (c.unit === "s" ? anchor[i]! / v : v / anchor[i]!));
      const fmt = (xs: number[]) => xs.map((x) => x.toFixed(c.unit === "s" ? 2 : 0)).join(", ");
      console.log(`${c.name.padEnd(20)} ${side.name.padEnd(22)} ${ratios.map((r) => `${r.toFixed(2)}x`).join(", ")}   (ours ${fmt(ours)} ${c.unit}; nginx ${fmt(anchor)})`);
    }
  }
} finally {
  for (const server of servers) await server.stop().catch(() => {});
  await nginx?.stop();
  await stopBackendServices();
  rmSync(work, { recursive: true, force: true });
}
