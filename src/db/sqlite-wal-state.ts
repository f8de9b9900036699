// Whether anything was committed to a SQLite database in WAL mode, by this process or any other,
// for the price of one pread: the WAL-index header. Every connection to the database maps the
// `-shm` file, whose first 96 bytes are two copies of a 48-byte header that each commit rewrites
// (copy two first, then copy one), its change counter incremented and its frame count, salts and
// checksum changed (https://www.sqlite.org/walformat.html, "The WAL-Index Header"). Equal
// headers at two moments mean that no transaction committed in between; two copies that differ
// mean a commit is rewriting them, and the state is unknown.
//
// A state read before a query and again after it, when equal, names the snapshot that query read:
// the per-process caches of the hot paths keep a result under that state and serve it while the
// header is unchanged (measured on the narinfo lookup: 1-2 µs for the pread, 10-25 µs for the
// query with its read transaction and locks). The header is SQLite's cross-process protocol,
// shared by every SQLite version that opens the file; its version field is checked all the same.
import { closeSync, openSync, readSync } from "node:fs";

const HEADER = 48;
/** WALINDEX_MAX_VERSION, the iVersion field every SQLite since 3.7.0 writes */
const WAL_INDEX_VERSION = 3007000;

export class WalState {
  #fd: number | null;
  readonly #buf = Buffer.alloc(2 * HEADER);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** The state of the database at `dbPath` (opened in WAL mode), or null when it has no WAL index. */
  static open(dbPath: string): WalState | null {
    let fd: number;
    try {
      fd = openSync(`${dbPath}-shm`, "r");
    } catch {
      return null;
    }
    const state = new WalState(fd);
    if (state.current() === null || state.#buf.readUInt32LE(0) !== WAL_INDEX_VERSION && state.#buf.readUInt32BE(0) !== WAL_INDEX_VERSION) {
      state.close();
      return null;
    }
    return state;
  }

  /** The committed state now (equal strings: nothing committed in between), or null when unknown. */
  current(): string | null {
    if (this.#fd === null) return null;
    let n: number;
    try {
      n = readSync(this.#fd, this.#buf, 0, this.#buf.length, 0);
    } catch {
      return null;
    }
    const buf = this.#buf;
    // isInit (byte 12) is set once the header is valid; the two copies differ while a commit writes
    if (n < buf.length || buf[12] === 0 || buf.compare(buf, HEADER, 2 * HEADER, 0, HEADER) !== 0) return null;
    return buf.toString("latin1", 0, HEADER);
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}
