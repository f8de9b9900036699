// Upload sessions against single requests, in one run: the same store path (--path, default
// /usr/lib/jvm, NAR 587 MB) pushed with the real `attic push` into fresh atticd servers (each
// its own database and storage, so none deduplicates against another):
//   1. direct, one PUT per path (`--chunk-size 0`): the anchor;
//   2. direct, in parts (an upload session);
//   3. in parts through nginx with `client_max_body_size 8m`, where a single PUT gets 413.
// Prints each push's throughput and its ratio to the anchor.
//
// Beside each, atticd's CPU per thread (main, workers, libuv, V8); --cpu-prof DIR writes its CPU
// profiles (every thread) into DIR/<backend>-<n> (bench/profile-top.ts sums them up).
//
//   node bench/upload-sessions.ts [--path /usr/lib/jvm] [--part "8 MiB"] [--backends sqlite-local] [--cpu-prof DIR]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, pathInfo, startBenchServer, type BenchServer } from "./lib/atticd.ts";
import { formatThreadCpu, threadCpu, threadCpuDelta } from "./lib/threads.ts";
import { stopBackendServices } from "./backends.ts";
import { runAttic } from "../test/unit/client/run-attic.ts";
import { runNginxProxy } from "../test/helpers/nginx.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    part: { type: "string", default: "8 MiB" },
    backends: { type: "string", default: "sqlite-local" },
    "cpu-prof": { type: "string" },
  },
});
const MiB = 2 ** 20;
const work = mkdtempSync(join(tmpdir(), "attic-bench-sessions-"));

async function timedPush(server: BenchServer, endpoint: string, path: string, args: string[], name: string): Promise<number> {
  await server.createCache("s", false);
  const home = join(work, name);
  mkdirSync(join(home, "attic"), { recursive: true });
  writeFileSync(join(home, "attic", "config.toml"), `default-server = "b"\n[servers.b]\nendpoint = "${endpoint}"\ntoken = "${server.token}"\n`);
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: home, NIX_REMOTE: "" };
  const start = performance.now();
  const r = await runAttic(["push", "s", path, ...args], { env });
  const seconds = (performance.now() - start) / 1000;
  if (r.code !== 0) throw new Error(`attic push (${name}): ${r.stderr}`);
  return seconds;
}

try {
  const info = values.path!.startsWith("/nix/store/") ? pathInfo(values.path!) : addToStore(values.path!);
  const narSize = info.narSize;
  console.log(`path ${info.path}, NAR ${(narSize / MiB).toFixed(0)} MiB; parts of ${values.part}; proxy: nginx, client_max_body_size 8m`);
  const top = `[upload]\nmax-chunk-size = ${JSON.stringify(values.part)}\nstaging-path = ${JSON.stringify(join(work, "staging"))}`;
  for (const spec of values.backends!.split(",")) {
    const rows: [string, number, string][] = [];
    for (const kind of ["direct single PUT", "direct in parts", "nginx in parts"] as const) {
      const prof = values["cpu-prof"] ? join(values["cpu-prof"], `${spec}-${rows.length}`) : null;
      if (prof) mkdirSync(prof, { recursive: true });
      const server = await startBenchServer(spec, { type: "zstd", level: 8 }, top, prof ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${prof}` } : {});
      const proxy = kind === "nginx in parts" ? await runNginxProxy(server.url, "8m") : null;
      try {
        const endpoint = proxy ? `http://127.0.0.1:${proxy.port}/` : `${server.url}/`;
        const pid = server.proc.child.pid!;
        const threads = threadCpu(pid);
        const seconds = await timedPush(server, endpoint, info.path, kind === "direct single PUT" ? ["--chunk-size", "0"] : [], `${spec}-${rows.length}`);
        const cpu = threadCpuDelta(pid, threads, threadCpu(pid));
        rows.push([kind, narSize / MiB / seconds, `atticd CPU ${cpu.total.toFixed(2)} s: ${formatThreadCpu(cpu.parts)}`]);
      } finally {
        await proxy?.close();
        await server.stop();
      }
    }
    const anchor = rows[0]![1];
    for (const [kind, rate, cpu] of rows) {
      console.log(`${spec}: ${kind.padEnd(18)} ${rate.toFixed(1).padStart(6)} MiB/s (${((rate / anchor) * 100).toFixed(0)} % of a direct single PUT)`);
      console.log(`    ${cpu}`);
    }
  }
  await stopBackendServices();
} finally {
  rmSync(work, { recursive: true, force: true });
}
