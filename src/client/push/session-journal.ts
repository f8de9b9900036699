// The upload sessions a push has open, kept in the client's state folder
// (`$XDG_STATE_HOME/attic/upload-sessions/`, one small file per NAR) so that a push killed in
// the middle resumes the same session when run again instead of sending every part again. A
// file names the server, cache and NAR it belongs to (its name is a hash of them); it goes once
// the session is finalized, lost or given up. A file that cannot be read or written costs a
// resume, never the push.
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { UploadPathNarInfo } from "../../api/v1.ts";
import { stateHome } from "../../util/xdg.ts";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "../atomic-write.ts";

export interface SavedSession {
  session_id: string;
  chunk_size: number;
}

export class SessionJournal {
  readonly #dir: string;
  readonly #endpoint: string;

  constructor(dir: string, endpoint: string) {
    this.#dir = dir;
    this.#endpoint = endpoint;
  }

  static forEnv(env: NodeJS.ProcessEnv, endpoint: string): SessionJournal {
    return new SessionJournal(join(stateHome(env), "attic", "upload-sessions"), endpoint);
  }

  #file(info: UploadPathNarInfo): string {
    const key = [this.#endpoint, info.cache, info.store_path_hash, info.nar_hash, String(info.nar_size)].join("\0");
    return join(this.#dir, `${createHash("sha256").update(key).digest("hex").slice(0, 32)}.json`);
  }

  async load(info: UploadPathNarInfo): Promise<SavedSession | null> {
    try {
      const saved = JSON.parse(await readFile(this.#file(info), "utf8")) as Partial<SavedSession>;
      if (typeof saved.session_id !== "string" || !/^[0-9a-f-]{36}$/.test(saved.session_id)) return null;
      if (typeof saved.chunk_size !== "number" || !(saved.chunk_size > 0)) return null;
      return { session_id: saved.session_id, chunk_size: saved.chunk_size };
    } catch {
      return null;
    }
  }

  async save(info: UploadPathNarInfo, session: SavedSession): Promise<void> {
    const record = { ...session, server: this.#endpoint, cache: info.cache, store_path: info.store_path };
    await writeFileAtomic(this.#file(info), `${JSON.stringify(record)}\n`, PRIVATE_FILE_MODE).catch(() => {});
  }

  async forget(info: UploadPathNarInfo): Promise<void> {
    await rm(this.#file(info), { force: true }).catch(() => {});
  }
}
