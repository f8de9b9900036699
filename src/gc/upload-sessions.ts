// Abandoned upload sessions (ours): rows no client has touched for the grace period, or whose
// atticd stopped proving it is alive (it crashed), and the parts they left waiting on disk. The
// atticd that holds a session drops its pipeline and staged parts itself once the session is
// idle for as long; this sweep is for what a crashed process left behind.
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Db } from "../db/connect.ts";
import { getUploadSession, reapUploadSessions } from "../db/queries/upload-sessions.ts";

const SESSION_DIR_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export async function reapAbandonedUploadSessions(
  db: Db,
  staleBefore: Date,
  stagingPath: string | undefined,
): Promise<{ sessions: number; stagedDirs: number }> {
  const sessions = await reapUploadSessions(db, staleBefore);
  let stagedDirs = 0;
  if (stagingPath === undefined) return { sessions, stagedDirs };
  let names: string[];
  try {
    names = await readdir(stagingPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { sessions, stagedDirs };
    throw err;
  }
  for (const name of names) {
    if (!SESSION_DIR_RE.test(name)) continue;
    const dir = join(stagingPath, name);
    const info = await stat(dir).catch(() => null);
    // a folder changed recently may belong to a session of another database sharing the path
    if (!info?.isDirectory() || info.mtime >= staleBefore) continue;
    if (await getUploadSession(db, name)) continue;
    await rm(dir, { recursive: true, force: true });
    stagedDirs++;
  }
  return { sessions, stagedDirs };
}
