// Pull-through (issue 27), in one run: a real upstream (nginx serving `nix copy --to file://…`
// binary caches, xz and zstd, signed) and atticd pulling through from it.
//   first pull:  `nix-store -r` through a fresh atticd cache (fetched from the upstream while
//                served) against `nix-store -r` straight from nginx (target ≥ 0.8×)
//   second pull: the same path again from atticd (now stored) against nginx (target ≥ 1.0×)
//   storage:     what a second path sharing most of its content with the first adds to storage
// Each run uses a fresh cache; the cases are interleaved, anchor first.
//
//   node bench/pull-through.ts [--path /usr/lib/python3.11] [--backends sqlite-local,postgres-s3] [--runs 2] [--compressions zstd,xz]
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, nix, NIX_ENV, NIX_OPTS, startBenchServer, type BenchServer } from "./lib/atticd.ts";
import { runNginx, type NginxProcess } from "../test/helpers/nginx.ts";
import { stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/python3.11" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    runs: { type: "string", default: "2" },
    compressions: { type: "string", default: "zstd,xz" },
  },
});
const MB = 1e6;
const runs = Number(values.runs);

/** Seconds for Nix to substitute `storePath` from `cacheUrl` into a fresh store. */
function nixPull(work: string, cacheUrl: string, storePath: string, trustedKey: string | null): number {
  const dir = mkdtempSync(join(work, "store-"));
  const home = join(dir, "home");
  mkdirSync(home);
  const sigs = trustedKey ? ["--option", "trusted-public-keys", trustedKey] : ["--option", "require-sigs", "false"];
  const start = process.hrtime.bigint();
  execFileSync("nix-store", ["--store", join(dir, "root"), "-r", storePath, "--option", "substituters", cacheUrl, ...sigs, ...NIX_OPTS.slice(0, 3)], {
    env: { ...NIX_ENV, XDG_CACHE_HOME: home },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

const work = mkdtempSync(join(tmpdir(), "attic-bench-pt-"));
const servers: BenchServer[] = [];
let nginx: NginxProcess | undefined;
try {
  // two paths sharing most of their content: the folder, and the folder with one file added
  const a = addToStore(values.path!);
  const variant = join(work, "variant");
  cpSync(values.path!, variant, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(variant, "ADDED-BY-BENCH"), `variant ${Date.now()}\n`);
  const b = addToStore(variant);
  const secret = nix(["nix", "key", "generate-secret", "--key-name", "bench-upstream-1", ...NIX_OPTS.slice(3)]).trim();
  const keyFile = join(work, "upstream.sk");
  writeFileSync(keyFile, secret);
  const publicKey = execFileSync("nix", ["key", "convert-secret-to-public", ...NIX_OPTS.slice(3)], { input: secret, encoding: "utf8", env: NIX_ENV }).trim();
  const root = join(work, "upstream");
  const compressions = values.compressions!.split(",");
  for (const c of compressions) {
    nix(["nix", "copy", "--to", `file://${join(root, c)}?compression=${c}&secret-key=${keyFile}`, a.path, b.path, ...NIX_OPTS]);
  }
  nginx = await runNginx(`location / { root ${root}; }`, {
    http: `sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;`,
  });
  const base = `http://127.0.0.1:${nginx.port}`;
  console.log(`path: ${a.path} (NAR ${(a.narSize / MB).toFixed(1)} MB); variant ${b.path} (NAR ${(b.narSize / MB).toFixed(1)} MB); upstream ${compressions.join(", ")}`);

  const lines: string[] = [];
  for (const spec of values.backends!.split(",")) {
    const server = await startBenchServer(spec, { type: "zstd", level: 8 }, `[pull-through]\nallowed-upstreams = ["${base}/"]`);
    servers.push(server);
    const auth = { authorization: `Bearer ${server.token}`, "content-type": "application/json" };
    for (const c of compressions) {
      for (let run = 1; run <= runs; run++) {
        const name = `pt-${c}-${run}`;
        const key = await server.createCache(name, true);
        const res = await fetch(`${server.url}/_api/v1/cache-config/${name}`, {
          method: "PATCH",
          headers: auth,
          body: JSON.stringify({ upstreams: [{ url: `${base}/${c}`, keys: [publicKey] }] }),
        });
        if (!res.ok) throw new Error(`configure: ${res.status} ${await res.text()}`);
        const anchor = nixPull(work, `${base}/${c}`, a.path, null);
        const first = nixPull(work, `${server.url}/${name}`, a.path, key);
        const anchor2 = nixPull(work, `${base}/${c}`, a.path, null);
        const second = nixPull(work, `${server.url}/${name}`, a.path, key);
        const before = await server.storedBytes();
        nixPull(work, `${server.url}/${name}`, b.path, key);
        const added = (await server.storedBytes()) - before;
        const line =
          `${spec.padEnd(12)} ${c.padEnd(4)} run ${run}: first pull ${first.toFixed(2)} s vs nginx ${anchor.toFixed(2)} s = ${(anchor / first).toFixed(2)}x; ` +
          `second ${second.toFixed(2)} s vs nginx ${anchor2.toFixed(2)} s = ${(anchor2 / second).toFixed(2)}x; ` +
          `variant added ${(added / MB).toFixed(2)} MB of storage (its NAR ${(b.narSize / MB).toFixed(1)} MB)`;
        console.log(line);
        lines.push(line);
      }
    }
    console.log(`${server.url}: peak RSS ${(server.proc.peakRss() / 2 ** 20).toFixed(0)} MiB`);
  }
  console.log(`\nsummary (ratios: nginx time / atticd time, higher is better)\n${lines.join("\n")}`);
} finally {
  for (const server of servers) await server.stop().catch(() => {});
  await nginx?.close();
  await stopBackendServices();
  rmSync(work, { recursive: true, force: true });
}
