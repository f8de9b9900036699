// Packed chunk storage (docs/packs.md): what a push and a pull cost the storage, beside the time.
// For each backend and layout (packs, and `packs = false`: upstream's one object per chunk):
//   big path:   pushed through PUT /_api/v1/upload-path, then its NAR served once with curl
//   closure:    N small store paths (builtins.toFile, plus a root referring to all) pushed with
//               one real `attic push`, then the root's closure pulled by `nix-store -r`
// printing the S3 requests by method (counted at a proxy in front of the S3 server), the files
// written under the local storage folder, and the seconds taken.
//
//   node bench/packs.ts [--path /usr/lib/jvm] [--backends sqlite-local,postgres-s3] [--layouts packs,objects] [--paths 300]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addToStore, NIX_OPTS, startBenchServer } from "./lib/atticd.ts";
import { stopBackendServices } from "./backends.ts";
import { runAttic } from "../test/unit/client/run-attic.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    layouts: { type: "string", default: "packs,objects" },
    paths: { type: "string", default: "300" },
  },
});
const MB = 1e6;
const N = Number(values.paths);

function since(before: Record<string, number>, now: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [m, n] of Object.entries(now)) if (n - (before[m] ?? 0) > 0) out[m] = n - (before[m] ?? 0);
  return out;
}
const show = (c: Record<string, number>): string => (Object.keys(c).length === 0 ? "none" : Object.entries(c).map(([m, n]) => `${m} ${n}`).join(", "));
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

function curl(url: string): number {
  const out = execFileSync("curl", ["-s", "-f", "-o", "/dev/null", "-w", "%{speed_download}", url], { encoding: "utf8" });
  return Number(out) / MB;
}

const work = mkdtempSync(join(tmpdir(), "attic-bench-packs-"));
try {
  const big = addToStore(values.path!);
  console.log(`big path: ${big.path} (NAR ${(big.narSize / MB).toFixed(1)} MB)`);
  // N small paths, distinct per run of this bench (a fresh salt), and a root referring to all
  const salt = `${Date.now()}`;
  const expr = `let files = builtins.genList (i: builtins.toFile "attic-packs-\${toString i}" "packs bench ${salt} \${toString i} \${builtins.concatStringsSep "" (builtins.genList (j: toString (i * j)) 200)}") ${N}; in
    derivation { name = "attic-packs-root"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
      inherit files; args = [ "-c" "echo $files > $out" ]; }`;
  const built = spawnSync("nix-build", ["--option", "build-users-group", "", "--option", "substituters", "", "--no-out-link", "-E", expr], {
    env: { ...process.env, NIX_REMOTE: "" },
    encoding: "utf8",
  });
  if (built.status !== 0) throw new Error(built.stderr);
  const root = built.stdout.trim();
  console.log(`closure: ${root} and ${N} small paths`);

  for (const spec of values.backends!.split(",")) {
    for (const layout of values.layouts!.split(",")) {
      const server = await startBenchServer(spec, { type: "zstd", level: 3 }, "", {}, layout === "objects" ? "packs = false" : "packs = true");
      try {
        const key = await server.createCache("b", true);
        let mark = server.s3Requests();
        let t = process.hrtime.bigint();
        await server.push("b", big);
        const pushS = seconds(t);
        const pushed = since(mark, server.s3Requests());
        const files = server.storageFiles();
        const narinfo = await (await fetch(`${server.url}/b/${big.path.slice(11, 43)}.narinfo`)).text();
        const url = `${server.url}/b/${/^URL: (.+)$/m.exec(narinfo)![1]}`;
        mark = server.s3Requests();
        const speed = curl(url);
        const served = since(mark, server.s3Requests());
        console.log(
          `${spec} ${layout.padEnd(7)} big path: push ${pushS.toFixed(1)} s, S3 ${show(pushed)}, files ${files}; ` +
            `NAR once ${speed.toFixed(0)} MB/s, S3 ${show(served)}`,
        );

        const home = join(work, `home-${spec}-${layout}`);
        mkdirSync(home);
        const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config"), NIX_REMOTE: "" };
        const login = await runAttic(["login", "bench", server.url, server.token], { env });
        if (login.code !== 0) throw new Error(`attic login: ${login.stderr}`);
        const filesBefore = server.storageFiles();
        mark = server.s3Requests();
        t = process.hrtime.bigint();
        const push = await runAttic(["push", "bench:b", root], { env });
        const closureS = seconds(t);
        if (push.code !== 0) throw new Error(`attic push: ${push.stdout}${push.stderr}`);
        const closurePushed = since(mark, server.s3Requests());
        const closureFiles = server.storageFiles() - filesBefore;
        const store = join(work, `store-${spec}-${layout}`);
        const cacheHome = join(work, `cache-${spec}-${layout}`);
        mkdirSync(cacheHome);
        mark = server.s3Requests();
        t = process.hrtime.bigint();
        execFileSync(
          "nix-store",
          ["--store", store, "-r", root, "--option", "substituters", `${server.url}/b`, "--option", "trusted-public-keys", key, ...NIX_OPTS.slice(0, 3)],
          { env: { ...env, XDG_CACHE_HOME: cacheHome }, stdio: ["ignore", "ignore", "pipe"] },
        );
        const pullS = seconds(t);
        const pulled = since(mark, server.s3Requests());
        rmSync(store, { recursive: true, force: true });
        console.log(
          `${spec} ${layout.padEnd(7)} ${N} small paths: attic push ${closureS.toFixed(1)} s, S3 ${show(closurePushed)}, files ${closureFiles}; ` +
            `nix-store -r ${pullS.toFixed(1)} s, S3 ${show(pulled)}`,
        );
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  await stopBackendServices();
  rmSync(work, { recursive: true, force: true });
}
