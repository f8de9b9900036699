// NAR-level deduplication: a valid, complete NAR with this hash exists (in any cache), so the
// upload only publishes it in this cache. With proof of possession required, the client must
// still send the whole NAR, which is hashed here and must match.
import type { UploadPathResult } from "../../api/v1.ts";
import type { Db } from "../../db/connect.ts";
import { transaction } from "../../db/connect.ts";
import { findAndLockNar, narHasMissingChunks, releaseNar } from "../../db/queries/nars.ts";
import { narStoredBytes } from "../../db/queries/stats.ts";
import type { CacheRow } from "../../db/schema.ts";
import { requestError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { BodyReader } from "./body.ts";
import { hashStream } from "./hashing.ts";
import type { UploadInfo } from "./info.ts";
import { publish } from "./publish.ts";

export async function tryDedup(
  deps: { db: Db; metrics: Metrics; requireProofOfPossession: boolean },
  info: UploadInfo,
  cache: CacheRow,
  body: BodyReader | null,
  sub: string | null,
): Promise<UploadPathResult | null> {
  const { db } = deps;
  const nar = await findAndLockNar(db, info.narHash.toTypedBase16());
  if (!nar) return null;
  try {
    if (await narHasMissingChunks(db, nar.id)) return null;
    if (deps.requireProofOfPossession) {
      if (!body) return null;
      const proof = await hashStream(body.take(info.nar_size));
      if (!proof.hash.equals(info.narHash) || proof.size !== info.nar_size || nar.nar_size !== info.nar_size) {
        throw requestError("Bad NAR Hash or Size");
      }
    } else if (nar.nar_size !== info.nar_size) {
      throw requestError("Bad NAR Hash or Size");
    }
    const storedBytes = await narStoredBytes(db, nar.id);
    await transaction(db, (tx) => publish(tx, info, cache, nar.id, sub, { storedBytes, newChunkBytes: 0, newFileBytes: 0 }));
    deps.metrics.inc("attic_uploads_deduplicated_total");
    return { kind: "Deduplicated", frac_deduplicated: null };
  } finally {
    await releaseNar(db, nar.id);
  }
}
