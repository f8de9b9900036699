// Where a NAR download spends atticd's CPU: one large path pushed once, then served with curl
// (warm page cache) and pulled by `nix-store -r` (warm, then cold page cache: root only), while atticd runs
// under `--cpu-prof`; each phase's window is cut out of every thread's profile and summarized as
// the top self-time functions. Prints the S3 requests and the CPU seconds of atticd, the S3 server,
// the counting proxy and the client for each phase, and what the S3 server alone gives.
//
//   node bench/serve-profile.ts [--path /usr/lib/jvm] [--backend sqlite-local] [--curl 3] [--top 15] [--keep DIR]
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, NIX_ENV, NIX_OPTS, startBenchServer } from "./lib/atticd.ts";
import { stopBackendServices } from "./backends.ts";
import { childrenCpuSeconds, cpuSeconds } from "./lib/cpu.ts";
import { readProfile, summarize, topLines } from "./lib/cpu-profile.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    backend: { type: "string", default: "sqlite-local" },
    curl: { type: "string", default: "3" },
    top: { type: "string", default: "15" },
    keep: { type: "string" },
    "storage-extra": { type: "string", default: "" },
  },
});
const execFileAsync = promisify(execFile);
const MB = 1e6;
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

const work = mkdtempSync(join(tmpdir(), "attic-bench-serve-profile-"));
const profDir = values.keep ?? join(work, "prof");
mkdirSync(profDir, { recursive: true });
const counts = (c: Record<string, number>, b: Record<string, number>): string =>
  Object.entries(c).map(([m, n]) => `${m} ${n - (b[m] ?? 0)}`).filter((s) => !s.endsWith(" 0")).join(", ") || "none";
const windows: { name: string; from: number; to: number }[] = [];

/** The S3 server this bench started (a child of this process running s3rver), if any. */
function s3ServerPid(): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]!.split(" ");
      if (Number(stat[1]) === process.pid && readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("--openssl-legacy-provider")) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** CPU seconds so far of atticd, the S3 server, this process (the counting proxy) and the clients it waited for. */
function cpuNow(atticd: number, s3: number | undefined): Record<string, number> {
  const self = process.cpuUsage();
  return { atticd: cpuSeconds([atticd]), ...(s3 ? { "S3 server": cpuSeconds([s3]), "S3 proxy (bench)": (self.user + self.system) / 1e6 } : {}), "client (curl/nix)": childrenCpuSeconds() };
}
const cpuSince = (before: Record<string, number>, now: Record<string, number>): string =>
  Object.entries(now).map(([k, v]) => `${k} ${(v - before[k]!).toFixed(2)} s`).join(", ");
try {
  const info = addToStore(values.path!);
  console.log(`path: ${info.path} (NAR ${(info.narSize / MB).toFixed(1)} MB), backend ${values.backend}`);
  const server = await startBenchServer(values.backend!, { type: "zstd", level: 3 }, "", { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` }, values["storage-extra"]);
  try {
    await server.createCache("pub", true);
    await server.push("pub", info);
    const cacheUrl = `${server.url}/pub`;
    const narinfo = await (await fetch(`${cacheUrl}/${info.path.slice(11, 43)}.narinfo`)).text();
    const narUrl = `${cacheUrl}/${/^URL: (.+)$/m.exec(narinfo)![1]}`;
    await execFileAsync("curl", ["-s", "-f", "-o", "/dev/null", narUrl]); // warm-up
    const atticdPid = server.proc.child.pid!;
    const s3Pid = s3ServerPid();
    for (let i = 1; i <= Number(values.curl); i++) {
      const before = server.s3Requests();
      const cpu = cpuNow(atticdPid, s3Pid);
      const from = nowUs();
      const { stdout } = await execFileAsync("curl", ["-s", "-f", "-o", "/dev/null", "-w", "%{speed_download}", narUrl], { encoding: "utf8" });
      windows.push({ name: `curl warm #${i}`, from, to: nowUs() });
      console.log(`curl warm #${i}: ${(Number(stdout) / MB).toFixed(0)} MB/s, S3 ${counts(server.s3Requests(), before)}; CPU ${cpuSince(cpu, cpuNow(atticdPid, s3Pid))}`);
    }
    if (server.s3Bucket) {
      // the S3 server alone, in the same run: every pack object fetched whole, one at a time, as
      // a download reads its runs (what a single stream from this S3 server can give)
      const listing = await (await fetch(server.s3Bucket.direct)).text();
      const keys = [...listing.matchAll(/<Key>([^<]+\.pack)<\/Key>/g)].map((m) => m[1]!);
      for (const [name, base] of Object.entries(server.s3Bucket)) {
        let bytes = 0;
        const from = nowUs();
        for (const key of keys) {
          const { stdout } = await execFileAsync("curl", ["-s", "-f", "-o", "/dev/null", "-w", "%{size_download}", `${base}/${key}`], { encoding: "utf8" });
          bytes += Number(stdout);
        }
        console.log(`S3 server alone (${name}): ${keys.length} pack objects, ${(bytes / MB).toFixed(0)} MB in ${((nowUs() - from) / 1e6).toFixed(2)} s, ${(bytes / MB / ((nowUs() - from) / 1e6)).toFixed(0)} MB/s`);
      }
    }
    const nixPull = async (name: string): Promise<void> => {
      const dir = mkdtempSync(join(work, "store-"));
      mkdirSync(join(dir, "home"));
      const before = server.s3Requests();
      const cpu = cpuNow(atticdPid, s3Pid);
      const from = nowUs();
      await execFileAsync(
        "nix-store",
        ["--store", join(dir, "root"), "-r", info.path, "--option", "substituters", cacheUrl, "--option", "require-sigs", "false", ...NIX_OPTS.slice(0, 3)],
        { env: { ...NIX_ENV, XDG_CACHE_HOME: join(dir, "home") } },
      );
      const to = nowUs();
      windows.push({ name, from, to });
      console.log(`${name}: ${((to - from) / 1e6).toFixed(2)} s, S3 ${counts(server.s3Requests(), before)}; CPU ${cpuSince(cpu, cpuNow(atticdPid, s3Pid))}`);
      rmSync(dir, { recursive: true, force: true });
    };
    await nixPull("nix-store -r warm");
    if (process.getuid?.() === 0) {
      execFileSync("sync");
      writeFileSync("/proc/sys/vm/drop_caches", "3\n");
      await nixPull("nix-store -r cold");
    }
  } finally {
    await server.stop();
  }
  const profiles = readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile"));
  for (const w of windows) {
    console.log(`\n${w.name} (${((w.to - w.from) / 1e6).toFixed(2)} s):`);
    for (const f of profiles) {
      const { total, byFunction } = summarize(readProfile(join(profDir, f)), w);
      if (total > 0) console.log(`  ${f}: busy ${(total / 1e6).toFixed(2)} s\n${topLines(byFunction, total, Number(values.top)).map((l) => `    ${l}`).join("\n")}`);
    }
  }
} finally {
  await stopBackendServices();
  if (!values.keep) rmSync(work, { recursive: true, force: true });
}
