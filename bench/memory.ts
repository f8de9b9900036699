// Memory end to end, the way a user moves a big path: a store path whose NAR is --size bytes
// (default 2 GiB, incompressible) pushed with the real `attic push` (default -j) into a real
// atticd, then pulled back by real Nix (`nix-store --store DIR -r`, the cache as substituter).
// Prints the peak RSS of the client and of the server during each, against the 256 MiB target,
// with the throughput of each step. atticd is restarted between the push and the pull (same
// database and storage), so the pull's peak is its own.
//
// With --part (e.g. "32 MiB") the server takes uploads in parts and the push goes through an
// upload session.
//
// With --push-only the pull is skipped (the push side's peak alone). Each row prints as soon as
// it is measured.
//
//   node bench/memory.ts [--size 2147483648] [--part "32 MiB"] [--backends sqlite-local,postgres-s3] [--push-only]
import { warmWorkers } from "../test/helpers/warm.ts";
import { mkdtempSync, mkdirSync, rmSync, createWriteStream } from "node:fs";
import { createCipheriv, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { addToStore, NIX_ENV, NIX_OPTS, startBenchServer } from "./lib/atticd.ts";
import { stopBackendServices } from "./backends.ts";
import { runAttic } from "../test/unit/client/run-attic.ts";
import { trackPeakRss } from "../test/helpers/peak-rss.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: String(2 * 2 ** 30) },
    backends: { type: "string", default: "sqlite-local" },
    part: { type: "string" },
    "push-only": { type: "boolean", default: false },
  },
});
const size = Number(values.size);
const MiB = 2 ** 20;
const TARGET = 256 * MiB;

/** Incompressible bytes (AES-CTR keystream), written without holding them. */
async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const cipher = createCipheriv("aes-128-ctr", randomBytes(16), randomBytes(16));
  const out = createWriteStream(path);
  const zero = Buffer.alloc(4 * MiB);
  for (let done = 0; done < bytes; done += zero.length) {
    if (!out.write(cipher.update(zero.subarray(0, Math.min(zero.length, bytes - done))))) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

const fmt = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
const verdict = (b: number) => (b < TARGET ? "ok" : "OVER");

const work = mkdtempSync(join(tmpdir(), "attic-bench-memory-"));
const rows: string[] = [];
try {
  const folder = join(work, "big");
  mkdirSync(folder);
  await writeRandomFile(join(folder, "blob"), size);
  const info = addToStore(folder);
  rmSync(folder, { recursive: true });
  console.log(`path ${info.path}, NAR ${fmt(info.narSize)}`);

  for (const spec of values.backends!.split(",")) {
    const top = values.part === undefined ? "" : `[upload]\nmax-chunk-size = ${JSON.stringify(values.part)}\nstaging-path = ${JSON.stringify(join(work, "staging"))}`;
    const server = await startBenchServer(spec, { type: "zstd", level: 3 }, top);
    try {
      const key = await server.createCache("mem", false);
      const home = join(work, `home-${spec}`);
      mkdirSync(home);
      const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config"), NIX_REMOTE: "" };
      const login = await runAttic(["login", "bench", server.url, server.token], { env });
      if (login.code !== 0) throw new Error(`attic login: ${login.stderr}`);

      // a fresh process that finds Node's compile cache filled by the first, workers' modules
      // included (as any start from source after the first does: no type stripper in its RSS, as
      // with the installed JS)
      await warmWorkers(server.url, server.token);
      await server.restart();
      const serverBefore = server.proc.peakRss();
      let client = 0;
      let t = process.hrtime.bigint();
      const pushed = await runAttic(["push", "bench:mem", info.path], {
        env,
        onSpawn: (child) => {
          const rss = trackPeakRss(child.pid!, 50);
          child.once("exit", () => rss.stop());
          const timer = setInterval(() => (client = Math.max(client, rss.peak())), 50);
          child.once("exit", () => clearInterval(timer));
        },
      });
      const pushSeconds = Number(process.hrtime.bigint() - t) / 1e9;
      if (pushed.code !== 0) throw new Error(`attic push: ${pushed.stdout}${pushed.stderr}`);
      const serverPush = server.proc.peakRss();
      const pushRow =
        `${spec}: attic push${values.part === undefined ? "" : ` in parts of ${values.part}`} ${(info.narSize / MiB / pushSeconds).toFixed(0)} MiB/s, client peak ${fmt(client)} (${verdict(client)}), ` +
        `server peak ${fmt(serverPush)} (${verdict(serverPush)}; ${fmt(serverBefore)} before)`;
      console.log(pushRow);
      rows.push(pushRow);
      if (values["push-only"]) continue;

      // Nix pulls it back through netrc, as `attic use` would set it up
      const netrc = join(work, `netrc-${spec}`);
      const { writeFileSync } = await import("node:fs");
      writeFileSync(netrc, `machine 127.0.0.1\npassword ${server.token}\n`);
      const pullStore = join(work, `pull-${spec}`);
      // the pull in a fresh atticd (same database and storage): its peak is the pull's own, not
      // what the push left behind
      await server.restart();
      const pullStart = server.proc.peakRss();
      const pullOnly = trackPeakRss(server.proc.child.pid!, 50);
      t = process.hrtime.bigint();
      // asynchronous: with S3 the request-counting proxy runs in this process, and must keep serving
      await promisify(execFile)(
        "nix-store",
        [
          "--store", pullStore, "-r", info.path, ...NIX_OPTS.slice(0, 3),
          "--option", "substituters", `${server.url}/mem`, "--option", "trusted-public-keys", key, "--option", "netrc-file", netrc,
        ],
        { env: NIX_ENV },
      );
      const pullSeconds = Number(process.hrtime.bigint() - t) / 1e9;
      const serverPullOnly = pullOnly.peak();
      pullOnly.stop();
      rmSync(pullStore, { recursive: true, force: true });

      const pullRow = `${spec}: nix pull ${(info.narSize / MiB / pullSeconds).toFixed(0)} MiB/s, server peak during the pull ${fmt(serverPullOnly)} (${verdict(serverPullOnly)}; a fresh atticd, ${fmt(pullStart)} before)`;
      console.log(pullRow);
      rows.push(pullRow);
    } finally {
      await server.stop();
    }
  }
  await stopBackendServices();
  // the path goes again, so a second run does not find it cached anywhere
  spawn("nix-store", ["--delete", info.path, ...NIX_OPTS.slice(0, 3)], { env: NIX_ENV, stdio: "ignore" });
  console.log(`\ntarget: under ${fmt(TARGET)} for the client and the server`);
  for (const r of rows) console.log(r);
} finally {
  rmSync(work, { recursive: true, force: true });
}
