// The end-of-run checks of the chaos run (test/helpers/chaos.ts), once the faults have stopped
// and a collection past the grace period has run:
//   - every acknowledged path has a narinfo on both replicas, and every narinfo served (for any
//     path tried, acknowledged or not) comes with its full NAR, byte-identical to the store's;
//   - real Nix pulls every acknowledged path whose closure was acknowledged in that cache, into
//     a fresh store, and the result dumps to the same NAR;
//   - chunk rows and bucket objects match one to one, and no pending or deleted row is left.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { mapLimit } from "../../src/util/concurrency.ts";
import type { Db } from "../../src/db/connect.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { decompressWithCli } from "./decompress.ts";
import { dumpNar, nixOut, NIX_OPTS } from "./nix.ts";

export interface Pushed {
  cache: string;
  path: string;
  acknowledged: boolean;
}

export interface CheckResult {
  problems: string[];
  /** narinfos checked (per replica), with their NARs */
  narinfosServed: number;
  /** paths served although no client saw them acknowledged (the answer was lost) */
  servedUnacknowledged: number;
  nixPulled: number;
  chunkRows: number;
  bucketObjects: number;
}

export interface CheckDeps {
  replicas: string[];
  token: string;
  /** cache name → its public key */
  keys: Map<string, string>;
  closures: Map<string, string[]>;
  db: Db;
  bucket: string;
  /** the S3 server itself (not the fault proxy) */
  s3Endpoint: string;
}

const pathHash = (path: string) => path.slice(path.lastIndexOf("/") + 1, path.lastIndexOf("/") + 33);

export async function checkAfterChaos(pushed: Pushed[], deps: CheckDeps): Promise<CheckResult> {
  const result: CheckResult = { problems: [], narinfosServed: 0, servedUnacknowledged: 0, nixPulled: 0, chunkRows: 0, bucketObjects: 0 };
  const nars = new Map<string, Buffer>();
  const narOf = async (path: string) => nars.get(path) ?? nars.set(path, await dumpNar(path)).get(path)!;
  const auth = { authorization: `Bearer ${deps.token}` };

  const byKey = new Map<string, boolean>();
  for (const p of pushed) byKey.set(`${p.cache} ${p.path}`, (byKey.get(`${p.cache} ${p.path}`) ?? false) || p.acknowledged);
  // a few at a time: each NAR is decompressed by a CLI process
  await mapLimit([...byKey], 4, async ([key, acknowledged]) => {
    const [cache, path] = key.split(" ") as [string, string];
    let served = false;
    for (const replica of deps.replicas) {
      const where = `${cache}:${path} via ${replica}`;
      const ni = await fetch(`${replica}/${cache}/${pathHash(path)}.narinfo`, { headers: auth });
      const text = await ni.text();
      if (ni.status !== 200) {
        if (acknowledged) result.problems.push(`${where}: acknowledged, narinfo answers ${ni.status} ${text.slice(0, 200)}`);
        continue;
      }
      served = true;
      result.narinfosServed++;
      const info = parseNarInfo(text);
      const res = await fetch(`${replica}/${cache}/${info.url}`, { headers: auth });
      let body: Buffer;
      try {
        body = Buffer.from(await res.arrayBuffer());
      } catch (err) {
        result.problems.push(`${where}: narinfo served, its NAR broke off: ${String(err)}`);
        continue;
      }
      if (res.status !== 200) {
        result.problems.push(`${where}: narinfo served, its NAR answers ${res.status}`);
        continue;
      }
      const nar = await decompressWithCli(info.compression ?? "none", body).catch((err: unknown) => new Error(String(err)));
      if (nar instanceof Error) result.problems.push(`${where}: narinfo served, its NAR does not decompress: ${nar.message}`);
      else if (!nar.equals(await narOf(path))) result.problems.push(`${where}: narinfo served, its NAR (${nar.length} bytes) is not the store's`);
    }
    if (served && !acknowledged) result.servedUnacknowledged++;
  });

  result.nixPulled = await pullWithNix(byKey, deps, narOf, result.problems);

  // a chunk's bytes are its own object, or its pack's (docs/packs.md): every row's object must be
  // there, and every object must be a chunk's or a pack's (a pack with no live chunk left is
  // known, reclaimed by compaction, not leaked)
  const chunks = await deps.db.kysely
    .selectFrom("chunk")
    .leftJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
    .select(["chunk.id", "chunk.state", "chunk.remote_file", "chunk.pack_id", "attic_ts_pack.remote_file as pack_remote_file"])
    .execute();
  result.chunkRows = chunks.length;
  const keyOf = (remoteFile: string) => (JSON.parse(remoteFile) as { S3: { key: string } }).S3.key;
  const rowKeys = new Set(chunks.map((c) => keyOf(c.pack_id === null ? c.remote_file : c.pack_remote_file!)));
  const packRows = await deps.db.kysely.selectFrom("attic_ts_pack").select("remote_file").execute();
  const knownKeys = new Set([...rowKeys, ...packRows.map((p) => keyOf(p.remote_file))]);
  const objects = await listBucket(deps.s3Endpoint, deps.bucket);
  result.bucketObjects = objects.size;
  const noObject = [...rowKeys].filter((k) => !objects.has(k));
  const noRow = [...objects].filter((k) => !knownKeys.has(k));
  if (noObject.length > 0) result.problems.push(`${noObject.length} chunk rows without their object, e.g. ${noObject.slice(0, 3).join(", ")}`);
  if (noRow.length > 0) result.problems.push(`${noRow.length} bucket objects without a chunk row, e.g. ${noRow.slice(0, 3).join(", ")}`);
  const notValid = chunks.filter((c) => c.state !== "V");
  if (notValid.length > 0) result.problems.push(`${notValid.length} chunk rows not valid after the last collection: ${JSON.stringify(notValid.slice(0, 3))}`);
  const pendingNars = await deps.db.kysely.selectFrom("nar").select(["id", "state"]).where("state", "!=", "V").execute();
  if (pendingNars.length > 0) result.problems.push(`${pendingNars.length} NAR rows not valid after the last collection`);
  const lost = await deps.db.kysely.selectFrom("chunkref").select("id").where("chunk_id", "is", null).execute();
  if (lost.length > 0) result.problems.push(`${lost.length} chunkrefs lost their chunk`);
  return result;
}

/** Per cache, one `nix-store -r` of every acknowledged path whose closure was acknowledged there. */
async function pullWithNix(
  byKey: Map<string, boolean>,
  deps: CheckDeps,
  narOf: (path: string) => Promise<Buffer>,
  problems: string[],
): Promise<number> {
  let pulled = 0;
  const caches = [...new Set([...byKey.keys()].map((k) => k.split(" ")[0]!))];
  for (const [i, cache] of caches.entries()) {
    const acked = (path: string) => byKey.get(`${cache} ${path}`) === true;
    const paths = [...byKey.keys()].filter((k) => k.startsWith(`${cache} `)).map((k) => k.split(" ")[1]!);
    const pullable = paths.filter((p) => deps.closures.get(p)!.every(acked));
    if (pullable.length === 0) continue;
    const store = mkdtempSync(join(tmpdir(), "attic-chaos-pull-"));
    try {
      const replica = deps.replicas[i % deps.replicas.length]!;
      await nixOut("nix-store", [
        "--store", store, "-r", ...pullable, ...NIX_OPTS,
        "--option", "substituters", `${replica}/${cache}`, "--option", "trusted-public-keys", deps.keys.get(cache)!,
      ]);
      for (const path of pullable) {
        if (!(await dumpNar(join(store, path))).equals(await narOf(path))) problems.push(`nix pulled ${cache}:${path}, not byte-identical`);
        else pulled++;
      }
    } catch (err) {
      problems.push(`nix-store -r of ${pullable.length} paths from ${cache}: ${(err as Error).message.slice(0, 2000)}`);
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  }
  return pulled;
}

/** The keys in `bucket` (VERSION, s3rver's own, left out), listed from the S3 server directly. */
export async function listBucket(endpoint: string, bucket: string): Promise<Set<string>> {
  const client = new S3Client({
    endpoint,
    region: process.env.ATTIC_TEST_S3_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.ATTIC_TEST_S3_ACCESS_KEY_ID ?? "S3RVER",
      secretAccessKey: process.env.ATTIC_TEST_S3_SECRET_ACCESS_KEY ?? "S3RVER",
    },
  });
  const keys = new Set<string>();
  let token: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined && o.Key !== "VERSION") keys.add(o.Key);
      token = page.NextContinuationToken;
    } while (token);
  } finally {
    client.destroy();
  }
  return keys;
}
