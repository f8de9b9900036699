// Pushing with plain Nix (issue 17): `nix copy --to 'http://…/CACHE?compression=zstd'` into a real
// atticd process, beside `nix copy --to 'file://DIR?compression=zstd'` of the same path at the same
// level in the same run (the machine is shared: read the ratio, not the MB/s). Both sides do
// Nix's own work (dump, compress, hash); atticd then stages, verifies, decompresses, chunks and
// stores. Each run pushes to a fresh server, so nothing is deduplicated.
//
// Beside each, the CPU of the anchor's `nix copy` and atticd's CPU per thread; --cpu-prof DIR writes
// atticd's CPU profiles (every thread) into DIR/<backend>-<run> (bench/profile-top.ts sums them up).
//
//   node bench/nix-copy.ts [--path /usr/lib/jvm] [--backends sqlite-local,postgres-s3] [--level 3] [--runs 2] [--cpu-prof DIR]
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, nix, NIX_OPTS, startBenchServer } from "./lib/atticd.ts";
import { childrenCpuSeconds } from "./lib/cpu.ts";
import { formatThreadCpu, threadCpu, threadCpuDelta } from "./lib/threads.ts";
import { stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    level: { type: "string", default: "3" },
    runs: { type: "string", default: "2" },
    "cpu-prof": { type: "string" },
  },
});
const level = Number(values.level);
const runs = Number(values.runs);
const backends = values.backends!.split(",");
const MB = 1e6;
const query = `compression=zstd&compression-level=${level}`;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function timedCopy(to: string, path: string, extra: string[] = []): number {
  const t = process.hrtime.bigint();
  nix(["nix", "copy", "--to", to, path, ...NIX_OPTS, "--option", "substituters", "", ...extra]);
  return seconds(t);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "attic-bench-nix-copy-"));
  try {
    const info = addToStore(values.path!);
    const rate = (s: number) => `${(info.narSize / MB / s).toFixed(1)} MB/s`;
    console.log(`path: ${info.path} (NAR ${(info.narSize / MB).toFixed(1)} MB), zstd level ${level} on both sides`);
    for (let run = 1; run <= runs; run++) {
      const ref = join(work, `file-${run}`);
      const nixCpu = childrenCpuSeconds();
      const fileSecs = timedCopy(`file://${ref}?${query}`, info.path);
      rmSync(ref, { recursive: true, force: true });
      console.log(`run ${run}: nix copy --to file://        ${fileSecs.toFixed(2)} s  ${rate(fileSecs)}  (nix CPU ${(childrenCpuSeconds() - nixCpu).toFixed(2)} s)`);
      for (const spec of backends) {
        const prof = values["cpu-prof"] ? join(values["cpu-prof"], `${spec}-${run}`) : null;
        if (prof) mkdirSync(prof, { recursive: true });
        const server = await startBenchServer(spec, { type: "zstd", level }, "", prof ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${prof}` } : {});
        try {
          await server.createCache("bench", false);
          const netrc = join(work, "netrc");
          writeFileSync(netrc, `machine 127.0.0.1\npassword ${server.token}\n`, { mode: 0o600 });
          const pid = server.proc.child.pid!;
          const threads = threadCpu(pid);
          const secs = timedCopy(`${server.url}/bench?${query}`, info.path, ["--option", "netrc-file", netrc]);
          const cpu = threadCpuDelta(pid, threads, threadCpu(pid));
          const stored = await server.storedBytes();
          console.log(
            `run ${run}: nix copy --to http (${spec.padEnd(15)}) ${secs.toFixed(2)} s  ${rate(secs)}  ${(fileSecs / secs).toFixed(2)}× file://  (stored ${(stored / MB).toFixed(1)} MB)`,
          );
          console.log(`       atticd CPU ${cpu.total.toFixed(2)} s: ${formatThreadCpu(cpu.parts)}`);
        } finally {
          await server.stop();
        }
      }
    }
    console.log(`machine: ${execFileSync("nproc", { encoding: "utf8" }).trim()} cores, load ${execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ")}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
    await stopBackendServices();
  }
}

await main();
