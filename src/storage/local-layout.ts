// The on-disk layout of the local backend, as upstream: `{root}/{key[0]}/{key[0..2]}/{key}` and a
// `VERSION` file holding `1`. A folder without `VERSION` is version 0 (all files flat in the
// root) and is migrated into the sharded layout on open, before `VERSION` is written, so an
// interrupted migration simply resumes on the next start.
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isValidKey } from "./keys.ts";

export const LAYOUT_VERSION = 1;
/** Prefix of in-progress writes; a leading dot can never be a valid key. */
export const TEMP_PREFIX = ".tmp-";

/** The path of a key already checked with `isValidKey`. */
export function shardedPath(root: string, key: string): string {
  return join(root, key.slice(0, 1), key.slice(0, 2), key);
}

async function readVersion(root: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(join(root, "VERSION"), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
  const version = Number(text.trim());
  if (!Number.isInteger(version)) throw new Error(`invalid storage VERSION file in ${root}: ${JSON.stringify(text)}`);
  return version;
}

/** Move every flat file of a version-0 folder into its shard directory. Returns how many moved. */
async function migrateFlatLayout(root: string): Promise<number> {
  let moved = 0;
  for (const entry of await readdir(root, { withFileTypes: true })) {
    // Names that are not valid keys were never written by Attic; leave them where they are.
    if (!entry.isFile() || !isValidKey(entry.name)) continue;
    const target = shardedPath(root, entry.name);
    await mkdir(join(target, ".."), { recursive: true });
    await rename(join(root, entry.name), target);
    moved++;
  }
  return moved;
}

/** Create the folder if needed, migrate a version-0 layout, and make sure `VERSION` says 1. */
export async function prepareLayout(root: string): Promise<{ migrated: number }> {
  await mkdir(root, { recursive: true });
  const version = await readVersion(root);
  if (version === LAYOUT_VERSION) return { migrated: 0 };
  if (version !== 0) throw new Error(`unsupported local storage VERSION ${version} in ${root} (this server knows 1)`);
  const migrated = await migrateFlatLayout(root);
  await writeFile(join(root, "VERSION"), String(LAYOUT_VERSION));
  return { migrated };
}

/**
 * Remove temp files older than `olderThanMs` that a crashed process left in the shard
 * directories. They are never visible under a key, only wasted space.
 */
export async function sweepTempFiles(root: string, olderThanMs: number): Promise<number> {
  const cutoff = Date.now() - olderThanMs;
  let removed = 0;
  const subdirs = async (dir: string): Promise<string[]> =>
    (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  for (const level1 of await subdirs(root)) {
    for (const level2 of await subdirs(level1)) {
      for (const name of await readdir(level2)) {
        if (!name.startsWith(TEMP_PREFIX)) continue;
        const path = join(level2, name);
        const info = await stat(path).catch(() => null);
        if (info && info.mtimeMs < cutoff) {
          await rm(path, { force: true });
          removed++;
        }
      }
    }
  }
  return removed;
}
