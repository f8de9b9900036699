// What a store holds against what its database says it must hold, for the compaction tests:
// sealed and retired packs, and chunks stored one object each; and the packs by state.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Db } from "../../src/db/connect.ts";
import type { Config } from "../../src/server/config/types.ts";
import { bucketKeys } from "../integration/gc-fixtures.ts";

/** The object names in storage (local storage's VERSION aside), sorted. */
export async function storedNames(config: Config, dir: string): Promise<string[]> {
  if (config.storage.type === "local") {
    return readdirSync(join(dir, "storage"), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name !== "VERSION")
      .map((e) => e.name)
      .sort();
  }
  return (await bucketKeys((config.storage as { bucket: string }).bucket)).sort();
}

/** What the database says storage must hold: every pack row's object and each valid chunk of its own. */
export async function expectedNames(db: Db): Promise<string[]> {
  const packs = await db.kysely.selectFrom("attic_ts_pack").select(["remote_file", "state"]).execute();
  const loose = await db.kysely.selectFrom("chunk").select("remote_file").where("pack_id", "is", null).where("state", "=", "V").execute();
  return [...packs, ...loose].map((r) => keyOf(r.remote_file)).sort();
}

export function keyOf(remoteFile: string): string {
  const rf = JSON.parse(remoteFile) as { Local?: { name: string }; S3?: { key: string } };
  return rf.Local?.name ?? rf.S3!.key;
}

export async function packStates(db: Db): Promise<Record<string, number>> {
  const rows = await db.kysely.selectFrom("attic_ts_pack").select("state").execute();
  const out: Record<string, number> = {};
  for (const { state } of rows) out[state.trim()] = (out[state.trim()] ?? 0) + 1;
  return out;
}
