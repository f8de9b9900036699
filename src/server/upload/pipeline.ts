// PUT /_api/v1/upload-path after auth, and every other way a NAR comes in (upload sessions,
// `nix copy`, pull-through): the stages of an upload, each in its own file (docs/architecture.md,
// "The life of an upload"):
//   dedup.ts       NAR-level deduplication (publish what exists)
//   coalescing.ts  uploads of the same NAR in this process wait for the first
//   chunked.ts     at or above the chunking threshold: the single pass, chunk by chunk
//   whole.ts       below it: the same pass, the NAR as one chunk
//   cleanup.ts     what a failed upload leaves behind
//   publish.ts     the object row and the push's figures
// Here: the order they run in, and the NAR claim that makes one upload (of any process) store a
// new NAR while the others wait and deduplicate.
import { setTimeout as sleep } from "node:timers/promises";
import type { UploadPathResult } from "../../api/v1.ts";
import type { Db } from "../../db/connect.ts";
import { claimNar } from "../../db/queries/nars.ts";
import type { CacheRow } from "../../db/schema.ts";
import type { StorageDriver } from "../../storage/types.ts";
import type { Config } from "../config/types.ts";
import type { Metrics } from "../metrics.ts";
import type { BodyReader } from "./body.ts";
import { uploadChunked } from "./chunked.ts";
import { BUSY_POLL_MS, BUSY_WINDOW_MS, ChunkStore } from "./chunks.ts";
import { UploadCleanup } from "./cleanup.ts";
import { InProcessUploads } from "./coalescing.ts";
import { tryDedup } from "./dedup.ts";
import type { UploadInfo } from "./info.ts";
import { NarClaimLease } from "./nar-claim.ts";
import { uploadWhole } from "./whole.ts";

const DEFAULT_PACK_SIZE = 64 * 1024 * 1024;

export class Uploader {
  private readonly chunks: ChunkStore;
  private readonly running = new InProcessUploads();
  private readonly cleanup: UploadCleanup;

  private readonly db: Db;
  private readonly storage: StorageDriver;
  private readonly config: Config;
  private readonly metrics: Metrics;

  constructor(db: Db, storage: StorageDriver, config: Config, metrics: Metrics) {
    this.db = db;
    this.storage = storage;
    this.config = config;
    this.metrics = metrics;
    this.chunks = new ChunkStore(
      db,
      storage,
      { type: config.compression.type, level: config.compression.level, narinfoName: config.compression.narinfoName },
      { packs: config.storage.packs ?? true, packSize: config.storage.packSize ?? DEFAULT_PACK_SIZE },
    );
    this.cleanup = new UploadCleanup(db, this.chunks);
  }

  /** Drop the cleanups not yet run and seal the open pack (shutdown). */
  async close(): Promise<void> {
    this.cleanup.close();
    await this.chunks.close();
  }

  async upload(info: UploadInfo, cache: CacheRow, body: BodyReader, sub: string | null): Promise<UploadPathResult> {
    const narHash = info.narHash.toTypedBase16();
    for (;;) {
      const dedup = await this.dedup(info, cache, body, sub);
      if (dedup) return dedup;
      const other = this.running.of(narHash);
      if (!other) break;
      await other;
    }
    const done = this.running.begin(narHash);
    const lease = new NarClaimLease(this.db);
    try {
      // a NAR found valid but incomplete (a lost chunk) is uploaded again rather than waited for
      let ignoreValid = false;
      // just looked up (nothing awaited since): the claim itself sees a NAR another process finished meanwhile
      let lookedUp = true;
      for (;;) {
        // another process may have finished the same NAR while we waited
        if (!lookedUp) {
          const dedup = await this.dedup(info, cache, body, sub);
          if (dedup) return dedup;
        }
        lookedUp = false;
        const threshold = this.config.chunking.narSizeThreshold;
        const chunked = threshold !== 0 && info.nar_size >= threshold;
        let result: UploadPathResult;
        const deps = { db: this.db, storage: this.storage, config: this.config, metrics: this.metrics, chunks: this.chunks, cleanup: this.cleanup };
        if (chunked) {
          const claim = await claimNar(
            this.db,
            { nar_hash: narHash, nar_size: info.nar_size, compression: this.config.compression.narinfoName, num_chunks: 0 },
            { busyAfter: new Date(Date.now() - BUSY_WINDOW_MS), ignoreValid, lease: lease.claim },
          );
          if (claim.kind === "valid") {
            ignoreValid = true;
            continue;
          }
          if (claim.kind === "busy") {
            // another replica is storing this NAR right now: dedup against it once it is done
            await sleep(BUSY_POLL_MS);
            continue;
          }
          lease.hold(narHash);
          result = await uploadChunked(deps, info, cache, body, sub, claim.id);
        } else {
          result = await uploadWhole(deps, info, cache, body, sub);
        }
        this.metrics.inc("attic_uploads_total");
        this.metrics.inc("attic_upload_bytes_total", info.nar_size);
        return result;
      }
    } finally {
      await lease.stop();
      done();
    }
  }

  /**
   * Without proof of possession, an upload session for a NAR the server has is answered at once
   * (upstream's PR #342 does the same); null when a session is needed.
   */
  async dedupWithoutProof(info: UploadInfo, cache: CacheRow, sub: string | null): Promise<UploadPathResult | null> {
    if (this.config.requireProofOfPossession) return null;
    return this.dedup(info, cache, null, sub);
  }

  private dedup(info: UploadInfo, cache: CacheRow, body: BodyReader | null, sub: string | null): Promise<UploadPathResult | null> {
    return tryDedup({ db: this.db, metrics: this.metrics, requireProofOfPossession: this.config.requireProofOfPossession }, info, cache, body, sub);
  }
}
