// Push and pull throughput of one large store path through a real atticd process, side by side
// with Nix's own file:// binary cache on the same path in the same run:
//   ours:      nix-store --dump | PUT /_api/v1/upload-path      then  nix copy --from http://atticd/<cache>
//   reference: nix copy --to 'file://…?compression=zstd&compression-level=8'  then  nix copy --from file://…
// Prints MB/s of each, the ratios, and the server's peak RSS.
//
//   node bench/push-pull.ts [--path /usr/lib/jvm] [--backends sqlite-local,postgres-s3] [--compression zstd] [--level 8]
// PostgreSQL and S3 backends start a throwaway cluster and s3rver, as the tests do.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Readable } from "node:stream";
import { spawnAtticd } from "../test/helpers/atticd-process.ts";
import { prepareServer } from "../test/helpers/server.ts";
import { backendFor, stopBackendServices } from "./backends.ts";
import { atticClaims, ALL, mintHs256 } from "../test/helpers/tokens.ts";
import { NixHash } from "../src/nix/hash.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "/usr/lib/jvm" },
    backends: { type: "string", default: "sqlite-local" },
    compression: { type: "string", default: "zstd" },
    // the same level for both sides: 8 is atticd's default for zstd (upstream's), Nix's is 3
    level: { type: "string", default: "8" },
  },
});

const NIX_ENV = { ...process.env, NIX_REMOTE: "" };
const NIX_OPTS = ["--option", "build-users-group", "", "--extra-experimental-features", "nix-command"];
const MB = 1e6;

function nix(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { env: NIX_ENV, encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "pipe"] });
}

function timed<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const result = fn();
  return [result, Number(process.hrtime.bigint() - start) / 1e9];
}

async function timedAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return [result, Number(process.hrtime.bigint() - start) / 1e9];
}

const storePath = nix(["nix-store", "--add", values.path!, ...NIX_OPTS.slice(0, 3)]).trim();
const info = JSON.parse(nix(["nix", "path-info", "--json", storePath, ...NIX_OPTS]))[0] as { narHash: string; narSize: number };
const narSize = info.narSize;
console.log(`path: ${storePath} (NAR ${(narSize / MB).toFixed(1)} MB), compression ${values.compression} level ${values.level} on both sides`);

const work = mkdtempSync(join(tmpdir(), "attic-bench-"));
const rows: { name: string; seconds: number }[] = [];
const rate = (s: number) => `${(narSize / MB / s).toFixed(1)} MB/s`;

try {
  // reference: Nix's file:// binary cache
  const refCache = join(work, "ref-cache");
  const [, refPush] = timed(() => nix(["nix", "copy", "--to", `file://${refCache}?compression=${values.compression}&compression-level=${values.level}`, storePath, ...NIX_OPTS]));
  const refStore = join(work, "ref-store");
  const [, refPull] = timed(() => nix(["nix", "copy", "--no-check-sigs", "--from", `file://${refCache}`, "--to", refStore, storePath, ...NIX_OPTS]));
  rows.push({ name: "nix copy --to file://", seconds: refPush }, { name: "nix copy --from file://", seconds: refPull });

  for (const spec of values.backends!.split(",")) {
    const backend = await backendFor(spec);
    const setup = await prepareServer({ backend, compression: { type: values.compression!, level: Number(values.level) } });
    const server = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
    try {
      const token = mintHs256(setup.secret, atticClaims("bench", { "*": ALL }));
      const auth = { authorization: `Bearer ${token}` };
      const created = await fetch(`${server.url}/_api/v1/cache-config/bench`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ keypair: "Generate", is_public: true, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
      });
      if (!created.ok) throw new Error(`create cache: ${created.status} ${await created.text()}`);
      const key = ((await (await fetch(`${server.url}/_api/v1/cache-config/bench`, { headers: auth })).json()) as { public_key: string }).public_key;

      const [, push] = await timedAsync(async () => {
        const dump = spawn("nix-store", ["--dump", storePath], { env: NIX_ENV, stdio: ["ignore", "pipe", "inherit"] });
        const res = await fetch(`${server.url}/_api/v1/upload-path`, {
          method: "PUT",
          headers: {
            ...auth,
            "x-attic-nar-info": JSON.stringify({
              cache: "bench",
              store_path_hash: storePath.slice(11, 43),
              store_path: storePath,
              references: [],
              system: null,
              deriver: null,
              sigs: [],
              ca: null,
              nar_hash: NixHash.parse(info.narHash).toTypedBase16(),
              nar_size: narSize,
            }),
          },
          body: Readable.toWeb(dump.stdout) as ReadableStream,
          duplex: "half",
        } as RequestInit);
        const text = await res.text();
        if (!res.ok) throw new Error(`upload: ${res.status} ${text}`);
      });
      const pullStore = join(work, `pull-${spec}`);
      const [, pull] = timed(() =>
        nix(["nix", "copy", "--from", `${server.url}/bench`, "--to", pullStore, storePath, ...NIX_OPTS, "--option", "trusted-public-keys", key]),
      );
      rows.push({ name: `atticd ${spec} push (HTTP API)`, seconds: push }, { name: `atticd ${spec} pull (nix copy --from)`, seconds: pull });
      console.log(`atticd ${spec}: peak RSS ${(server.peakRss() / 2 ** 20).toFixed(0)} MiB`);
    } finally {
      await server.stop();
      rmSync(setup.dir, { recursive: true, force: true });
    }
  }
  await stopBackendServices();

  console.log("");
  for (const r of rows) console.log(`${r.name.padEnd(44)} ${r.seconds.toFixed(2).padStart(7)} s  ${rate(r.seconds).padStart(12)}`);
  const byName = (n: string) => rows.find((r) => r.name === n)!.seconds;
  for (const spec of values.backends!.split(",")) {
    console.log(
      `ratio ${spec}: push ${(byName("nix copy --to file://") / byName(`atticd ${spec} push (HTTP API)`)).toFixed(2)}x, ` +
        `pull ${(byName("nix copy --from file://") / byName(`atticd ${spec} pull (nix copy --from)`)).toFixed(2)}x (higher is faster than Nix's file:// cache)`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
