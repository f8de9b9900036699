// `nix copy --to http://HOST/CACHE`: Nix PUTs the compressed NAR under its file hash first, then
// the narinfo. The NAR is staged on disk; the narinfo is the commit: its FileSize/FileHash are
// checked against the staged file, the file is decoded as it streams into the same upload
// pipeline as PUT /_api/v1/upload-path (which checks NarHash/NarSize, chunks, deduplicates and
// makes the object visible only at the end). The staged file goes once the narinfo is answered,
// except after a 5xx: Nix retries the narinfo then, and needs the NAR still there. The file's
// name is remembered: the pushing Nix will ask for it again (served-files.ts).
import { basename } from "node:path";
import { decodeNixFile, nixFileCompression, NixFileDecodeError } from "../../compression/nix-file.ts";
import type { Db } from "../../db/connect.ts";
import { getNar } from "../../db/queries/nars.ts";
import { findNixFile, putNixFile } from "../../db/queries/nix-files.ts";
import { findServedChunks } from "../../db/queries/objects.ts";
import type { CacheRow } from "../../db/schema.ts";
import type { StorageDriver } from "../../storage/types.ts";
import { decodedNar } from "../download/nar-stream.ts";
import { NixHash } from "../../nix/hash.ts";
import { NarInfoError, parseNarInfo, type NarInfo } from "../../nix/narinfo.ts";
import { storeDirOf } from "../../nix/store-path.ts";
import { NarStaging, reapStagedNars, STAGED_NAR_RE, StagedNarTooLargeError, StagingFullError, type StagedFile } from "../../storage/staging.ts";
import { sha256OfFile } from "../../workers/sha256.ts";
import type { Config } from "../config/types.ts";
import { narTooLarge, requestError, ServerError, stagingFull } from "../errors.ts";
import { BodyReader } from "../upload/body.ts";
import { uploadInfoFromNarInfo } from "../upload/info.ts";
import type { Uploader } from "../upload/pipeline.ts";

const REAP_EVERY_MS = 10 * 60_000;

export class NixPush {
  readonly staging: NarStaging;
  private readonly uploader: Uploader;
  private readonly config: Config;

  private readonly db: Db;
  private readonly storage: StorageDriver;

  constructor(uploader: Uploader, config: Config, db: Db, storage: StorageDriver) {
    this.uploader = uploader;
    this.config = config;
    this.db = db;
    this.storage = storage;
    this.staging = new NarStaging(config.nixProtocol.stagingPath, {
      maxFile: config.nixProtocol.maxNarSize,
      maxTotal: config.nixProtocol.stagingMaxSize,
    });
  }

  /**
   * Staged NARs whose narinfo never came, removed by the process that holds them (an api-server
   * replica may run without a collector on its host): at most every REAP_EVERY_MS, in the
   * background of a push. GC does the same for the folder it is configured with.
   */
  private reapAfter = 0;
  private reapSoon(): void {
    const now = Date.now();
    if (now < this.reapAfter) return;
    this.reapAfter = now + REAP_EVERY_MS;
    const before = new Date(now - this.config.garbageCollection.staleGracePeriod * 1000);
    void reapStagedNars(this.staging.root, before).catch(() => {});
  }

  /** PUT /<cache>/nar/<file>: stage the compressed NAR (push permission already checked). */
  async stageNar(cache: CacheRow, fileName: string, body: AsyncIterable<Buffer>, contentLength: number | null): Promise<void> {
    this.reapSoon();
    if (!STAGED_NAR_RE.test(fileName)) throw requestError(`Invalid NAR file name "${fileName.slice(0, 80)}" (expected <nix32 sha256>.nar[.xz|.zst|.bz2|.br])`);
    try {
      await this.staging.put(cache.name, fileName, body, contentLength);
    } catch (err) {
      if (err instanceof StagedNarTooLargeError) throw narTooLarge(`nix-protocol.max-nar-size is ${err.limit} bytes`);
      if (err instanceof StagingFullError) throw stagingFull();
      throw err;
    }
  }

  /** PUT /<cache>/<hash>.narinfo: verify the staged NAR against `text` and store it. */
  async commitNarInfo(cache: CacheRow, hash: string, text: string, sub: string | null): Promise<void> {
    const narinfo = parseChecked(text, hash, cache.store_dir);
    if (narinfo.narSize > this.config.nixProtocol.maxNarSize) throw narTooLarge(`NarSize ${narinfo.narSize} is over nix-protocol.max-nar-size`);
    const compression = nixFileCompression(narinfo.compression);
    if (!compression) throw requestError(`Unsupported Compression "${narinfo.compression ?? ""}" (supported: none, xz, zstd, br, bzip2)`);
    const fileName = narinfo.url.startsWith("nar/") ? narinfo.url.slice(4) : "";
    if (!STAGED_NAR_RE.test(fileName)) throw requestError(`URL "${narinfo.url.slice(0, 120)}" does not name a NAR file pushed to nar/`);
    const staged = await this.staging.find(cache.name, fileName);
    if (!staged) return this.commitKnownFile(cache, hash, narinfo, fileName, sub);
    let keep = false;
    try {
      await checkFile(staged, narinfo);
      const file = this.staging.open(staged);
      const decoded = decodeNixFile(compression, file);
      try {
        await this.uploader.upload(uploadInfoFromNarInfo(cache.name, hash, narinfo), cache, new BodyReader(decoded), sub);
      } finally {
        file.destroy();
        await decoded.return(undefined).catch(() => {});
      }
    } catch (err) {
      if (err instanceof NixFileDecodeError) throw requestError(`Bad NAR file: ${err.message}`);
      // a 5xx (a backend down): Nix retries this PUT, and the NAR must still be there
      keep = !(err instanceof ServerError && err.status < 500);
      throw err;
    } finally {
      if (!keep) await this.staging.remove(staged);
    }
    await this.remember(cache, hash, narinfo, fileName);
  }

  /** The file name the pushing Nix will ask for again (served-files.ts). */
  private async remember(cache: CacheRow, hash: string, narinfo: NarInfo, fileName: string): Promise<void> {
    const narHash = NixHash.parse(narinfo.narHash).toTypedBase16();
    await putNixFile(this.db, { cacheId: cache.id, fileName, storePathHash: hash, narHash, narSize: narinfo.narSize });
  }

  /**
   * A narinfo whose NAR file was not pushed because Nix found it here already (its HEAD of the
   * file's URL was answered by served-files.ts: the same NAR, compressed the same way, under
   * another path of this cache). The NAR is read back from storage into the upload pipeline,
   * which checks it against this narinfo's NarHash and links the path to it.
   */
  private async commitKnownFile(cache: CacheRow, hash: string, narinfo: NarInfo, fileName: string, sub: string | null): Promise<void> {
    const known = await findNixFile(this.db, cache.name, fileName);
    const nar = known ? await getNar(this.db, known.narId) : null;
    if (!known || !nar) throw requestError(`The NAR nar/${fileName} was not pushed before its narinfo (or was already used)`);
    const body = decodedNar(this.storage, nar, (afterSeq, limit) => findServedChunks(this.db, nar.id, afterSeq, limit));
    try {
      await this.uploader.upload(uploadInfoFromNarInfo(cache.name, hash, narinfo), cache, new BodyReader(body), sub);
    } finally {
      body.destroy();
    }
    await this.remember(cache, hash, narinfo, fileName);
  }
}

function parseChecked(text: string, hash: string, storeDir: string): NarInfo {
  let narinfo: NarInfo;
  try {
    narinfo = parseNarInfo(text);
  } catch (err) {
    if (err instanceof NarInfoError) throw requestError(`Invalid narinfo: ${err.message}`);
    throw err;
  }
  if (basename(narinfo.storePath).slice(0, 32) !== hash) throw requestError("The narinfo's StorePath does not match its URL");
  if (storeDirOf(narinfo.storePath) !== storeDir) throw requestError(`The narinfo's StorePath is not in the cache's store directory ${storeDir}`);
  if (!narinfo.narHash.startsWith("sha256:")) throw requestError("NarHash must be a sha256 hash");
  // these end up as lines of the narinfo we serve (decision 12)
  const fields = [narinfo.storePath, ...narinfo.sigs, narinfo.system ?? "", narinfo.ca ?? ""];
  if (fields.some((f) => /[\r\0]/.test(f))) throw requestError("The narinfo holds a CR or NUL");
  return narinfo;
}

/** FileSize and FileHash of the narinfo against the staged file (hashed by a worker of the pool, which reads the file itself). */
async function checkFile(staged: StagedFile, narinfo: NarInfo): Promise<void> {
  if (narinfo.fileSize !== undefined && narinfo.fileSize !== staged.size) {
    throw requestError(`FileSize ${narinfo.fileSize} does not match the NAR file pushed (${staged.size} bytes)`);
  }
  if (narinfo.fileHash === undefined) return;
  const expected = NixHash.parse(narinfo.fileHash);
  if (expected.algo !== "sha256") throw requestError("FileHash must be a sha256 hash");
  const { digest } = await sha256OfFile(staged.path);
  if (!NixHash.fromDigest("sha256", digest).equals(expected)) throw requestError("FileHash does not match the NAR file pushed");
}
