// One process's ear on PostgreSQL's change signal (change-signal.ts): a connection of its own
// that LISTENs, and a generation that moves on every notification. `current()` is the
// committed-state token of the hot-path caches (server/committed-lookups.ts), as the WAL-index
// header is on SQLite: equal tokens at two moments mean that no signalled commit reached this
// process in between. It is null (every lookup reads the database) until the connection listens,
// whenever it is lost, and once the last heartbeat it heard was sent more than SILENCE_MS ago.
// The heartbeat is a notification the connection sends itself: hearing it proves the whole path
// (a connection that dies without a word, or a pooler that runs LISTEN and the heartbeat on
// different server connections, is never taken for a listening one). PostgreSQL delivers
// notifications in commit order, so a heartbeat sent after a commit is heard only after that
// commit's notification: whatever delays the network or the scheduler add, nothing kept from
// before a commit is served more than SILENCE_MS after it.
// The generation also moves whenever the connection comes back, since a notification sent while
// nobody listened is never delivered. What remains is the delivery time of one notification:
// docs/decisions.md ("Replicas keep hot lookups between requests").
import type { Client } from "pg";
import { CHANGE_CHANNEL, CHANGE_FUNCTION } from "./change-signal.ts";

/** The connection sends itself a heartbeat this often. */
export const HEARTBEAT_MS = 500;
/** When the last heartbeat heard was sent longer ago than this, nothing kept is served until a newer one is heard (and then it is forgotten). */
export const SILENCE_MS = 2000;
/** A heartbeat not heard this long: the connection is dropped and made again. */
const RECONNECT_AFTER_MS = 5000;
const RETRY_MS = 1000;
/** Heartbeat payloads (every replica hears every heartbeat; only changes move the generation). */
const BEAT = "beat:";

export class PostgresChangeListener {
  readonly #connect: () => Client;
  readonly #log: ((msg: string) => void) | undefined;
  readonly #clock: () => number;
  #client: Client | null = null;
  #starting = false;
  #closed = false;
  /** listening, and the signal is installed */
  #listening = false;
  #generation = 0;
  #token = "0";
  #lastHeard = 0;
  /** the payload of the heartbeat in flight, and when it was sent */
  #beat: { payload: string; since: number; heard: () => void } | null = null;
  #beats = 0;
  readonly #id = `${process.pid}.${Math.random().toString(36).slice(2)}`;
  #heartbeat: NodeJS.Timeout | null = null;
  #retry: NodeJS.Timeout | null = null;
  #warnedMissing = false;

  constructor(connect: () => Client, opts: { log?: (msg: string) => void; clock?: () => number } = {}) {
    this.#connect = connect;
    this.#log = opts.log;
    this.#clock = opts.clock ?? (() => performance.now());
  }

  /** The committed-state token now, or null when unknown. The first call starts listening. */
  current(): string | null {
    if (!this.#listening) {
      if (!this.#client && !this.#starting && !this.#retry && !this.#closed) void this.#start();
      return null;
    }
    if (this.#clock() - this.#lastHeard > SILENCE_MS) {
      this.#bump(); // whatever was kept before the silence is never served after it
      return null;
    }
    return this.#token;
  }

  /**
   * A write of this process completed (a statement outside a transaction, or a commit): what was
   * kept before it is never served after it, without waiting for its notification. A lookup that
   * ran meanwhile is not kept either (its states before and after differ).
   */
  localCommit(): void {
    this.#bump();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopTimers();
    const client = this.#client;
    this.#client = null;
    this.#listening = false;
    await client?.end().catch(() => {});
  }

  #bump(): void {
    this.#generation++;
    this.#token = String(this.#generation);
  }

  async #start(): Promise<void> {
    this.#starting = true;
    const client = this.#connect();
    client.on("notification", (n) => {
      if (n.channel !== CHANGE_CHANNEL) return;
      if (!n.payload?.startsWith(BEAT)) this.#bump();
      else if (this.#beat?.payload === n.payload) this.#beat.heard();
    });
    client.on("error", () => this.#lost(client));
    client.on("end", () => this.#lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN "${CHANGE_CHANNEL}"`);
      // a database whose migrations have not run has no triggers: nothing would ever be heard
      const installed = await client.query("SELECT 1 FROM pg_proc WHERE proname = $1", [CHANGE_FUNCTION]);
      if (installed.rowCount === 0) throw new SignalMissing();
      this.#client = client;
      // listening only once a heartbeat has come back through it
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("its first heartbeat was not heard")), RECONNECT_AFTER_MS);
        this.#sendBeat(client, (sent) => {
          clearTimeout(timer);
          this.#lastHeard = sent;
          resolve();
        });
      });
      if (this.#closed || this.#client !== client) throw new Error("closed");
      this.#bump();
      this.#listening = true;
      this.#heartbeat = setInterval(() => this.#tick(client), HEARTBEAT_MS).unref();
    } catch (err) {
      if (this.#client === client) this.#client = null;
      this.#beat = null;
      if (err instanceof SignalMissing) {
        if (!this.#warnedMissing) this.#log?.("PostgreSQL change signal not installed (migration attic-ts_0013): hot lookups are read from the database on every request");
        this.#warnedMissing = true;
      } else if (!this.#closed) {
        this.#log?.(`PostgreSQL change listener: ${(err as Error).message}; hot lookups are read from the database until it listens again`);
      }
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      this.#scheduleRetry();
    } finally {
      this.#starting = false;
    }
  }

  /** A notification to itself; `heard` runs when it comes back, with the time it was sent. */
  #sendBeat(client: Client, heard: (sent: number) => void): void {
    const payload = `${BEAT}${this.#id}.${++this.#beats}`;
    const since = this.#clock();
    this.#beat = { payload, since, heard: () => {
      this.#beat = null;
      heard(since);
    } };
    client.query("SELECT pg_notify($1, $2)", [CHANGE_CHANNEL, payload]).catch(() => this.#lost(client));
  }

  #tick(client: Client): void {
    if (this.#beat !== null) {
      if (this.#clock() - this.#beat.since > RECONNECT_AFTER_MS) this.#lost(client);
      return;
    }
    this.#sendBeat(client, (sent) => {
      // a silence in between: whatever was kept before it is never served after it
      if (this.#clock() - this.#lastHeard > SILENCE_MS) this.#bump();
      this.#lastHeard = sent;
    });
  }

  /** The connection is gone (or hung): forget everything kept, listen again shortly. */
  #lost(client: Client): void {
    if (client !== this.#client) return;
    this.#client = null;
    this.#listening = false;
    this.#bump();
    this.#stopTimers();
    client.removeAllListeners("end");
    void client.end().catch(() => {});
    if (!this.#closed) this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      // listening again on the next request that asks
    }, RETRY_MS).unref();
  }

  #stopTimers(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    this.#beat = null;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
  }
}

class SignalMissing extends Error {}
