// Push throughput through a real atticd process, beside Nix's own file:// binary cache at the same
// zstd level in the same run (the machine is shared: read the ratios, not the MB/s):
//   big path:     nix copy --to 'file://DIR?compression=zstd&compression-level=L'  vs
//                 nix-store --dump | PUT /_api/v1/upload-path (bench/lib/atticd.ts push)
//   new version:  a tree of --tree-mb MB of mixed files pushed once, then 1 % of its files changed
//                 and the new version pushed: time against `nix copy --to file://` of that version,
//                 and the compressed bytes it added (from the server's database) against the first.
//
//   node bench/push.ts [--path /usr/lib/jvm] [--backends sqlite-local,postgres-s3] [--level 3]
//                      [--runs 2] [--tree-mb 300] [--only big|version] [--cpu-prof DIR]
// --cpu-prof writes atticd's CPU profiles (every thread) into DIR.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, nix, NIX_OPTS, startBenchServer } from "./lib/atticd.ts";
import { childrenCpuSeconds, cpuSeconds } from "./lib/cpu.ts";
import { formatThreadCpu, threadCpu, threadCpuDelta } from "./lib/threads.ts";
import { servicePids, stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    level: { type: "string", default: "3" },
    runs: { type: "string", default: "2" },
    "tree-mb": { type: "string", default: "300" },
    "tree-source": { type: "string", default: "/usr/lib/x86_64-linux-gnu" },
    only: { type: "string" },
    "cpu-prof": { type: "string" },
  },
});
const level = Number(values.level);
const runs = Number(values.runs);
const backends = values.backends!.split(",");
const MB = 1e6;

/**
 * Starts counting the CPU of what else runs during a push: this process (the client's HTTP
 * upload, and on S3 the counting proxy), `nix-store --dump` (a child, counted once waited for),
 * and the S3 server and PostgreSQL the bench started; call the result to format the deltas.
 */
function elsewhere(): () => string {
  const own = process.cpuUsage();
  const children = childrenCpuSeconds();
  const services = servicePids();
  const before = Object.fromEntries(Object.entries(services).map(([name, pids]) => [name, cpuSeconds(pids)]));
  return () => {
    const used = process.cpuUsage(own);
    const parts = [`bench process (client, proxy) ${((used.user + used.system) / 1e6).toFixed(2)}`, `nix-store --dump ${(childrenCpuSeconds() - children).toFixed(2)}`];
    for (const [name, pids] of Object.entries(services)) parts.push(`${name} ${(cpuSeconds(pids) - before[name]!).toFixed(2)}`);
    return parts.join(" · ");
  };
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** CPU seconds of the last `nixCopyTo` */
let lastNixCpu = 0;

function nixCopyTo(dir: string, path: string): number {
  const t = process.hrtime.bigint();
  const cpu = childrenCpuSeconds();
  nix(["nix", "copy", "--to", `file://${dir}?compression=zstd&compression-level=${level}`, path, ...NIX_OPTS]);
  lastNixCpu = childrenCpuSeconds() - cpu;
  return seconds(t);
}

function folderBytes(dir: string): number {
  return Number(execFileSync("du", ["-sb", dir], { encoding: "utf8" }).split("\t")[0]);
}

function profEnv(tag: string): NodeJS.ProcessEnv {
  if (!values["cpu-prof"]) return {};
  const dir = join(values["cpu-prof"], tag);
  mkdirSync(dir, { recursive: true });
  return { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` };
}

/** A seeded xorshift generator: the same tree and the same changes on every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/**
 * Copies of the regular files under `source` (sorted, to ~`bytes`) in `dest`; returns their
 * paths. Files over 8 MB and repeats of a file already taken (same size and first 64 KiB: Mesa's
 * dri/ drivers are one file under many names) are skipped, so the tree is many mixed files that
 * do not deduplicate against each other.
 */
function makeTree(source: string, dest: string, bytes: number): string[] {
  const files: string[] = [];
  const seen = new Set<string>();
  let total = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (total >= bytes) return;
      const from = join(dir, name);
      const st = lstatSync(from);
      if (st.isDirectory()) walk(from);
      else if (st.isFile() && st.size > 0 && st.size <= 8 * MB) {
        const head = Buffer.alloc(Math.min(65536, st.size));
        const fd = openSync(from, "r");
        readSync(fd, head, 0, head.length, 0);
        closeSync(fd);
        const id = `${st.size}:${createHash("sha256").update(head).digest("hex")}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const to = join(dest, String(files.length).padStart(5, "0") + "-" + name);
        copyFileSync(from, to);
        files.push(to);
        total += st.size;
      }
    }
  };
  mkdirSync(dest, { recursive: true });
  walk(source);
  return files;
}

/** Change 1 % of the files: 256 seeded random bytes overwritten at a random place in each. */
function changeFiles(files: string[], frac: number): number {
  const next = rng(13);
  const picked = new Set<number>();
  const want = Math.max(1, Math.round(files.length * frac));
  while (picked.size < want) picked.add(Math.floor(next() * files.length));
  for (const i of picked) {
    const file = files[i]!;
    const size = lstatSync(file).size;
    const patch = Buffer.alloc(Math.min(256, size));
    for (let k = 0; k < patch.length; k++) patch[k] = Math.floor(next() * 256);
    const fd = openSync(file, "r+");
    writeSync(fd, patch, 0, patch.length, Math.floor(next() * (size - patch.length + 1)));
    closeSync(fd);
  }
  return picked.size;
}

const work = mkdtempSync(join(tmpdir(), "attic-bench-push-"));
const lines: string[] = [];
const say = (line: string) => {
  console.log(line);
  lines.push(line);
};

async function benchBig(): Promise<void> {
  const info = addToStore(values.path!);
  say(`big path: ${info.path} (NAR ${(info.narSize / MB).toFixed(1)} MB), zstd level ${level} on both sides`);
  for (let run = 1; run <= runs; run++) {
    const ref = join(work, `ref-big-${run}`);
    const anchor = nixCopyTo(ref, info.path);
    const anchorCpu = lastNixCpu;
    rmSync(ref, { recursive: true, force: true });
    say(`  run ${run}: nix copy --to file://      ${anchor.toFixed(2)} s  ${(info.narSize / MB / anchor).toFixed(1)} MB/s  CPU ${lastNixCpu.toFixed(2)} s`);
    for (const spec of backends) {
      const server = await startBenchServer(spec, { type: "zstd", level }, "", profEnv(`big-${spec}-${run}`));
      try {
        await server.createCache("bench", true);
        const t = process.hrtime.bigint();
        const pid = server.proc.child.pid!;
        const cpu = cpuSeconds([pid]);
        const threads = threadCpu(pid);
        const others = elsewhere();
        await server.push("bench", info);
        const s = seconds(t);
        const serverCpu = cpuSeconds([pid]) - cpu;
        const perThread = threadCpuDelta(pid, threads, threadCpu(pid));
        say(
          `  run ${run}: atticd ${spec.padEnd(12)} push ${s.toFixed(2)} s  ${(info.narSize / MB / s).toFixed(1)} MB/s  ` +
            `ratio ${(anchor / s).toFixed(2)}x  server CPU ${serverCpu.toFixed(2)} s (${(serverCpu / anchorCpu).toFixed(2)}x nix copy's)  ` +
            `peak RSS ${(server.proc.peakRss() / 2 ** 20).toFixed(0)} MiB`,
        );
        say(`      per thread (CPU s): ${formatThreadCpu(perThread.parts)}`);
        say(`      elsewhere on this machine (CPU s): ${others()}`);
      } finally {
        await server.stop();
      }
    }
  }
}

async function benchVersion(): Promise<void> {
  const v1dir = join(work, "tree");
  const files = makeTree(values["tree-source"]!, v1dir, Number(values["tree-mb"]) * MB);
  const v1 = addToStore(v1dir);
  const changed = changeFiles(files, 0.01);
  const v2 = addToStore(v1dir);
  rmSync(v1dir, { recursive: true, force: true });
  say(
    `new version: ${files.length} files, NAR ${(v1.narSize / MB).toFixed(1)} MB; ${changed} files changed (256 bytes each) in v2 ${v2.path}`,
  );
  for (let run = 1; run <= runs; run++) {
    const ref = join(work, `ref-version-${run}`);
    nixCopyTo(ref, v1.path);
    const refV1 = folderBytes(ref);
    const anchor = nixCopyTo(ref, v2.path);
    const anchorCpu = lastNixCpu;
    const refAdded = folderBytes(ref) - refV1;
    rmSync(ref, { recursive: true, force: true });
    say(`  run ${run}: nix copy --to file:// v2   ${anchor.toFixed(2)} s  CPU ${anchorCpu.toFixed(2)} s  added ${(refAdded / MB).toFixed(1)} MB (${((100 * refAdded) / refV1).toFixed(0)} % of v1)`);
    for (const spec of backends) {
      const server = await startBenchServer(spec, { type: "zstd", level }, "", profEnv(`version-${spec}-${run}`));
      try {
        await server.createCache("bench", true);
        let t = process.hrtime.bigint();
        await server.push("bench", v1);
        const first = seconds(t);
        const stored1 = await server.storedBytes();
        t = process.hrtime.bigint();
        const pid = server.proc.child.pid!;
        const cpu = cpuSeconds([pid]);
        const threads = threadCpu(pid);
        const others = elsewhere();
        await server.push("bench", v2);
        const second = seconds(t);
        const serverCpu = cpuSeconds([pid]) - cpu;
        const perThread = threadCpuDelta(pid, threads, threadCpu(pid));
        const added = (await server.storedBytes()) - stored1;
        say(
          `  run ${run}: atticd ${spec.padEnd(12)} v1 ${first.toFixed(2)} s, v2 ${second.toFixed(2)} s  ratio ${(anchor / second).toFixed(2)}x  ` +
            `added ${(added / MB).toFixed(2)} MB (${((100 * added) / stored1).toFixed(1)} % of v1's ${(stored1 / MB).toFixed(1)} MB)  ` +
            `v2 server CPU ${serverCpu.toFixed(2)} s vs nix copy ${anchorCpu.toFixed(2)} s`,
        );
        say(`      v2 per thread (CPU s): ${formatThreadCpu(perThread.parts)}`);
        say(`      elsewhere on this machine (CPU s): ${others()}`);
      } finally {
        await server.stop();
      }
    }
  }
}

try {
  if (values.only !== "version") await benchBig();
  if (values.only !== "big") await benchVersion();
} finally {
  await stopBackendServices();
  rmSync(work, { recursive: true, force: true });
}
console.log("\nsummary (ratio = nix copy time / atticd time; higher is faster than Nix)");
for (const line of lines) console.log(line);

