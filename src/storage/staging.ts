// NARs pushed with Nix (`PUT /<cache>/nar/<filehash>.nar.<ext>`) wait here, on the server's own
// disk, for the narinfo that names them; only then are they verified and stored as chunks. One
// folder per cache; each file is written to a temp name and renamed, so a half-written NAR is
// never found under its name. The total is bounded; files left behind (a narinfo that never
// came) are reaped by garbage collection after the grace period.
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, type ReadStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** `<sha256 in nix32>.nar[.<ext>]`, the file names Nix 2.x gives NARs it uploads */
export const STAGED_NAR_RE = /^[0-9a-df-np-sv-z]{52}\.nar(\.(xz|zst|bz2|br|lzip|lz4|gz))?$/;
const TEMP_PREFIX = ".tmp-";

export class StagedNarTooLargeError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`the NAR file is over ${limit} bytes`);
    this.name = "StagedNarTooLargeError";
    this.limit = limit;
  }
}

export class StagingFullError extends Error {
  constructor() {
    super("the staging folder is at its size bound");
    this.name = "StagingFullError";
  }
}

export interface StagedFile {
  path: string;
  size: number;
}

export class NarStaging {
  readonly root: string;
  private readonly maxFile: number;
  private readonly maxTotal: number;
  /** bytes staged (and being written) by this process; re-counted from disk before refusing */
  private used: number | null = null;

  constructor(root: string, limits: { maxFile: number; maxTotal: number }) {
    this.root = root;
    this.maxFile = limits.maxFile;
    this.maxTotal = limits.maxTotal;
  }

  /**
   * Stages `source` as `fileName` of `cacheName` (both validated by the caller). Refuses with
   * StagedNarTooLargeError / StagingFullError as soon as the bytes (or the announced length) go
   * over a bound; nothing is left behind then.
   */
  async put(cacheName: string, fileName: string, source: AsyncIterable<Buffer>, announced: number | null): Promise<StagedFile> {
    if (!STAGED_NAR_RE.test(fileName)) throw new Error(`internal: unchecked staged NAR name ${fileName}`);
    if (announced !== null && announced > this.maxFile) throw new StagedNarTooLargeError(this.maxFile);
    const dir = join(this.root, cacheName);
    await mkdir(dir, { recursive: true });
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(6).toString("hex")}-${fileName}`);
    let written = 0;
    const take = async (n: number): Promise<void> => {
      if (written + n > this.maxFile) throw new StagedNarTooLargeError(this.maxFile);
      this.used ??= await this.measure();
      if (this.used + n > this.maxTotal) {
        this.used = await this.measure();
        if (this.used + n > this.maxTotal) throw new StagingFullError();
      }
      this.used += n;
      written += n;
    };
    try {
      const counted = async function* (): AsyncGenerator<Buffer> {
        for await (const piece of source) {
          await take(piece.length);
          yield piece;
        }
      };
      await pipeline(counted, createWriteStream(temp, { flags: "wx" }) as Writable);
      const target = join(dir, fileName);
      const replaced = await stat(target).catch(() => null);
      await rename(temp, target);
      if (replaced) this.release(replaced.size);
      return { path: target, size: written };
    } catch (err) {
      this.release(written);
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** The staged file, or null when there is none. */
  async find(cacheName: string, fileName: string): Promise<StagedFile | null> {
    if (!STAGED_NAR_RE.test(fileName)) return null;
    const path = join(this.root, cacheName, fileName);
    const info = await stat(path).catch(() => null);
    return info?.isFile() ? { path, size: info.size } : null;
  }

  open(file: StagedFile): ReadStream {
    return createReadStream(file.path, { highWaterMark: 1 << 20 });
  }

  async remove(file: StagedFile): Promise<void> {
    const info = await stat(file.path).catch(() => null);
    await rm(file.path, { force: true });
    if (info) this.release(info.size);
  }

  private release(n: number): void {
    if (this.used !== null) this.used = Math.max(0, this.used - n);
  }

  /** Bytes on disk under the root (files of other processes and temp files included). */
  private async measure(): Promise<number> {
    let total = 0;
    for (const file of await stagedFiles(this.root)) total += file.size;
    return total;
  }
}

async function stagedFiles(root: string): Promise<{ path: string; size: number; mtimeMs: number }[]> {
  const out: { path: string; size: number; mtimeMs: number }[] = [];
  const caches = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const cache of caches) {
    if (!cache.isDirectory()) continue;
    const dir = join(root, cache.name);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const info = await stat(join(dir, name)).catch(() => null);
      if (info?.isFile()) out.push({ path: join(dir, name), size: info.size, mtimeMs: info.mtimeMs });
    }
  }
  return out;
}

/** GC: removes staged NARs (and temp files) last written before `before`. */
export async function reapStagedNars(root: string, before: Date): Promise<{ files: number; bytes: number }> {
  const cutoff = before.getTime();
  let files = 0;
  let bytes = 0;
  for (const file of await stagedFiles(root)) {
    if (file.mtimeMs >= cutoff) continue;
    await rm(file.path, { force: true });
    files++;
    bytes += file.size;
  }
  return { files, bytes };
}
