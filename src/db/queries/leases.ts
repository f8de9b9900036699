// Named leases in the database: at most one process holds a name at a time (e.g. "gc", so two
// garbage collectors started by mistake are harmless). A lease expires unless renewed, so a
// crashed holder frees it after its TTL. One code path for both engines.
import { randomUUID } from "node:crypto";
import type { Db } from "../connect.ts";

/** Take the lease if it is free, expired, or already ours. */
export async function tryAcquireLease(db: Db, name: string, owner: string, ttlMs: number): Promise<boolean> {
  const now = new Date();
  const row = await db.kysely
    .insertInto("attic_ts_lease")
    .values({ name, owner, expires_at: new Date(now.getTime() + ttlMs) })
    .onConflict((oc) =>
      oc
        .column("name")
        .doUpdateSet((eb) => ({ owner: eb.ref("excluded.owner"), expires_at: eb.ref("excluded.expires_at") }))
        .where((eb) => eb.or([eb("attic_ts_lease.expires_at", "<", now), eb("attic_ts_lease.owner", "=", owner)])),
    )
    .returning("owner")
    .executeTakeFirst();
  return row?.owner === owner;
}

/** Take the lease whoever holds it (the caller knows its holder is gone or never was). */
export async function takeLease(db: Db, name: string, owner: string, ttlMs: number): Promise<void> {
  await db.kysely
    .insertInto("attic_ts_lease")
    .values({ name, owner, expires_at: new Date(Date.now() + ttlMs) })
    .onConflict((oc) => oc.column("name").doUpdateSet((eb) => ({ owner: eb.ref("excluded.owner"), expires_at: eb.ref("excluded.expires_at") })))
    .execute();
}

/** Extend our lease; false when it was lost (expired and taken by another). */
export async function renewLease(db: Db, name: string, owner: string, ttlMs: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable("attic_ts_lease")
    .set({ expires_at: new Date(Date.now() + ttlMs) })
    .where("name", "=", name)
    .where("owner", "=", owner)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function releaseLease(db: Db, name: string, owner: string): Promise<void> {
  await db.kysely.deleteFrom("attic_ts_lease").where("name", "=", name).where("owner", "=", owner).execute();
}

export type LeaseResult<T> = { acquired: true; value: T } | { acquired: false };

/**
 * Run `fn` while holding the lease, renewing it every third of the TTL. `fn` gets a signal that
 * aborts if the lease is lost (a renewal failed); it should stop then. Not acquired: `fn` does not run.
 * A caller that runs again and again (a periodic collector) passes the same `owner` each time: a
 * release lost with the database (a restart during the run) then does not lock it out of its
 * own next runs until the TTL runs out.
 */
export async function withLease<T>(
  db: Db,
  name: string,
  fn: (signal: AbortSignal) => Promise<T>,
  opts: { ttlMs?: number; owner?: string } = {},
): Promise<LeaseResult<T>> {
  const ttlMs = opts.ttlMs ?? 120_000;
  const owner = opts.owner ?? randomUUID();
  if (!(await tryAcquireLease(db, name, owner, ttlMs))) return { acquired: false };
  const lost = new AbortController();
  const timer = setInterval(() => {
    renewLease(db, name, owner, ttlMs).then(
      (ok) => ok || lost.abort(new Error(`lease ${name} was lost`)),
      (err: unknown) => lost.abort(err),
    );
  }, Math.max(10, Math.floor(ttlMs / 3)));
  timer.unref();
  try {
    return { acquired: true, value: await fn(lost.signal) };
  } finally {
    clearInterval(timer);
    await releaseLease(db, name, owner).catch(() => {});
  }
}
