// Which packs one compaction run touches (docs/compaction.md): wholly dead packs are dropped
// without copying; packs whose dead share reaches the threshold are rewritten, worst first, until
// the run's byte budget is spent; packs much smaller than a full one are merged, but only when
// together they fill a new pack (borg's and restic's rule: never rewrite small packs into another
// small one). Pure: the figures come from the database, the decisions go back to compact.ts.

export interface PackFigures {
  id: number;
  /** bytes of the pack object */
  size: number;
  /** bytes of the chunks that are still alive (valid or pending) */
  liveBytes: number;
  liveChunks: number;
}

export interface CompactionPolicy {
  /** a pack is rewritten once this share of its bytes is dead, 0 < threshold ≤ 1 */
  threshold: number;
  /** live bytes copied per run at most (wholly dead packs cost nothing and are not counted) */
  maxRewriteBytes: number;
  /** the size of a full pack: packs below a quarter of it are merged when enough of them exist */
  packSize: number;
}

export interface CompactionPlan {
  /** packs with no live chunk: retired at once, no copy */
  drop: number[];
  /** packs whose live chunks are copied into new packs, worst first */
  rewrite: number[];
  /** live bytes the rewrite copies */
  rewriteBytes: number;
  /** bytes the plan frees once the retired packs are deleted */
  reclaimBytes: number;
}

export function deadShare(p: PackFigures): number {
  return p.size > 0 ? Math.max(0, p.size - p.liveBytes) / p.size : 0;
}

export function planCompaction(packs: readonly PackFigures[], policy: CompactionPolicy): CompactionPlan {
  const plan: CompactionPlan = { drop: [], rewrite: [], rewriteBytes: 0, reclaimBytes: 0 };
  const candidates: PackFigures[] = [];
  for (const p of packs) {
    if (p.liveChunks === 0) {
      plan.drop.push(p.id);
      plan.reclaimBytes += p.size;
    } else if (deadShare(p) >= policy.threshold) candidates.push(p);
  }
  // worst first; between equals the one that frees more
  candidates.sort((a, b) => deadShare(b) - deadShare(a) || b.size - b.liveBytes - (a.size - a.liveBytes) || a.id - b.id);
  const take = (p: PackFigures): boolean => {
    if (plan.rewriteBytes + p.liveBytes > policy.maxRewriteBytes && plan.rewrite.length > 0) return false;
    if (p.liveBytes > policy.maxRewriteBytes) return false;
    plan.rewrite.push(p.id);
    plan.rewriteBytes += p.liveBytes;
    plan.reclaimBytes += p.size - p.liveBytes;
    return true;
  };
  for (const p of candidates) if (!take(p)) break;

  // small packs (a busy S3 store seals one per upload completion): merged into full ones only
  const chosen = new Set(plan.rewrite);
  const small = packs.filter((p) => p.liveChunks > 0 && !chosen.has(p.id) && p.size < policy.packSize / 4).sort((a, b) => a.liveBytes - b.liveBytes || a.id - b.id);
  const smallLive = small.reduce((sum, p) => sum + p.liveBytes, 0);
  if (small.length >= 2 && smallLive >= policy.packSize) {
    let merged = 0;
    for (const p of small) {
      if (merged >= Math.floor(smallLive / policy.packSize) * policy.packSize) break;
      if (!take(p)) break;
      merged += p.liveBytes;
    }
  }
  return plan;
}
