// Client benchmark: `attic push` of a 1,001-path closure that the cache already holds must upload
// nothing and finish in under a second. Printed side by side with what such a push cannot avoid,
// measured in the same run on the same closure: Node's start, Nix's own closure and path-info
// queries, and the one get-missing-paths request alone.
//
//   node bench/client-push-cached.ts               a real atticd process (SQLite + local storage)
//   node bench/client-push-cached.ts --in-process  the server in this process (buildApp)
//   node bench/client-push-cached.ts --runs 5      repetitions of each measurement (best is shown)
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawnAtticd } from "../test/helpers/atticd-process.ts";
import { prepareServer, startServer } from "../test/helpers/server.ts";
import { ALL, atticClaims, mintHs256 } from "../test/helpers/tokens.ts";

const { values } = parseArgs({ options: { "in-process": { type: "boolean" }, runs: { type: "string", default: "3" } } });
const RUNS = Number(values.runs);
const N = 1000;
const root = join(import.meta.dirname, "..");
const nixEnv = { ...process.env, NIX_REMOTE: "" };

function nix(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { env: nixEnv, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return r.stdout;
}

async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; code: number | null; stderr: string }> {
  const start = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("close", (code) => resolve({ ms: performance.now() - start, code, stderr }));
  });
}

/** Best and all of `RUNS` timings; fails on a non-zero exit. */
async function best(what: () => Promise<{ ms: number; code?: number | null; stderr?: string }>): Promise<{ best: number; all: number[]; stderr: string }> {
  const all: number[] = [];
  let stderr = "";
  for (let i = 0; i < RUNS; i++) {
    const r = await what();
    if (r.code !== undefined && r.code !== 0) throw new Error(r.stderr);
    all.push(r.ms);
    stderr = r.stderr ?? "";
  }
  return { best: Math.min(...all), all, stderr };
}

// 1,000 tiny store paths (builtins.toFile, no builds) and one derivation referring to all of them.
const expr = `let files = builtins.genList (i: builtins.toFile "attic-bench-\${toString i}" "bench \${toString i}") ${N}; in
  derivation { name = "attic-bench-root"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    inherit files; args = [ "-c" "echo $files > $out" ]; }`;
const rootPath = nix("nix-build", ["--option", "build-users-group", "", "--option", "substituters", "", "--no-out-link", "-E", expr]).trim();
const closure = nix("nix-store", ["--query", "--requisites", rootPath]).trim().split("\n");

let endpoint: string;
let token: string;
let stop: () => Promise<unknown>;
if (values["in-process"] === true) {
  const s = await startServer();
  endpoint = s.url;
  token = s.rootToken();
  stop = () => s.stop();
} else {
  const setup = await prepareServer();
  const proc = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
  endpoint = proc.url;
  token = mintHs256(setup.secret, atticClaims("bench", { "*": ALL }));
  stop = async () => {
    await proc.stop();
    rmSync(setup.dir, { recursive: true, force: true });
  };
}
const api = (path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(endpoint + path, { ...init, headers: { authorization: `bearer ${token}`, "content-type": "application/json" } });
const uploadsSoFar = async (): Promise<number> => {
  const m = /^attic_uploads_total (\d+)$/m.exec(await (await fetch(`${endpoint}/metrics`)).text());
  if (m === null) throw new Error("no attic_uploads_total in /metrics");
  return Number(m[1]);
};

const home = mkdtempSync(join(tmpdir(), "attic-bench-"));
const env = { ...nixEnv, XDG_CONFIG_HOME: home, HOME: home };
const attic = (args: string[]) => timed(process.execPath, [join(root, "src/bin/attic.ts"), ...args], env);

try {
  const created = await api("/_api/v1/cache-config/bench", {
    method: "POST",
    body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  if (!created.ok) throw new Error(`create cache: ${created.status} ${await created.text()}`);
  await attic(["login", "bench", endpoint, token]);
  const first = await attic(["push", "bench", rootPath]);
  if (first.code !== 0) throw new Error(first.stderr);
  const firstUploads = await uploadsSoFar();

  const uploadsBefore = await uploadsSoFar();
  const push = await best(() => attic(["push", "bench", rootPath]));
  const uploaded = (await uploadsSoFar()) - uploadsBefore;
  const nodeStart = await best(() => attic(["--version"]));
  const query = await best(() => timed("nix-store", ["--query", "--requisites", rootPath], nixEnv));
  const pathInfo = await best(() => timed("nix", ["--extra-experimental-features", "nix-command", "path-info", "--json", "-r", rootPath], nixEnv));
  const hashes = closure.map((p) => p.slice("/nix/store/".length, "/nix/store/".length + 32));
  const missing = await best(async () => {
    const start = performance.now();
    const res = await api("/_api/v1/get-missing-paths", { method: "POST", body: JSON.stringify({ cache: "bench", store_path_hashes: hashes }) });
    const body = (await res.json()) as { missing_paths: string[] };
    if (!res.ok || body.missing_paths.length !== 0) throw new Error(`get-missing-paths: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    return { ms: performance.now() - start };
  });

  const row = (label: string, r: { best: number; all: number[] }): string =>
    `  ${label.padEnd(52)} ${r.best.toFixed(0).padStart(6)} ms   (runs: ${r.all.map((x) => x.toFixed(0)).join(" / ")})`;
  console.log(`closure: ${closure.length} paths, all already in the cache (${values["in-process"] === true ? "in-process server" : "atticd process"})`);
  console.log(`first push: ${firstUploads} uploads in ${(first.ms / 1000).toFixed(1)} s (the server's upload counter works)`);
  console.log(`attic says: ${push.stderr.trim()}`);
  console.log(`uploads during the ${RUNS} cached pushes: ${uploaded}`);
  console.log(row("attic push bench <root>  (whole command)", push));
  console.log(row("  for comparison: attic --version (Node start)", nodeStart));
  console.log(row("  for comparison: nix-store --query --requisites", query));
  console.log(row("  for comparison: nix path-info --json -r", pathInfo));
  console.log(row("  for comparison: one get-missing-paths request", missing));
  const ok = push.best < 1000 && uploaded === 0;
  console.log(ok ? "OK: nothing uploaded, under a second" : `FAIL: ${uploaded} uploads, ${push.best.toFixed(0)} ms`);
  process.exitCode = ok ? 0 : 1;
} finally {
  await stop();
  rmSync(home, { recursive: true, force: true });
}
