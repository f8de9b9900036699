// Writes of the user's files (client config, nix.conf, netrc): temp file + rename, so a crash
// never leaves a half-written file, and with the final mode from the start, so a token is never
// readable by others, even for a moment. A symlinked file (home-manager, dotfile repos) is
// written through to its target, as a plain write would.
import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export const PRIVATE_FILE_MODE = 0o600;

export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const target = await realpath(path).catch(() => path);
  const dir = dirname(target);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(target)}.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.writeFile(content);
    await fh.sync();
    await fh.close();
    // The umask may have narrowed the mode at creation; make it exact.
    await chmod(tmp, mode);
    await rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The permission bits of an existing file, or `fallback` when it does not exist. */
export async function existingMode(path: string, fallback: number): Promise<number> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch {
    return fallback;
  }
}
