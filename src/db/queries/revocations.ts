// Revoked tokens (ours, issue 18): by `jti` (a row with a jti revokes that token only; its `sub`
// is informative), or every token of a subject issued at or before a time (jti NULL). Every replica reads the whole live list every few seconds (server/revocations.ts), so
// the list is kept small: rows whose token can no longer be valid anyway are deleted by GC.
import type { Db } from "../connect.ts";
import { parseNullableTimestamp, parseTimestamp, toInt } from "../values.ts";

export interface Revocation {
  id: number;
  jti: string | null;
  sub: string | null;
  issuedBefore: Date | null;
  expiresAt: Date | null;
  createdAt: Date;
  reason: string | null;
}

export interface NewRevocation {
  jti?: string | null;
  sub?: string | null;
  issuedBefore?: Date | null;
  expiresAt?: Date | null;
  reason?: string | null;
  createdAt?: Date;
}

export async function insertRevocation(db: Db, row: NewRevocation): Promise<number> {
  const inserted = await db.kysely
    .insertInto("attic_ts_revocation")
    .values({
      jti: row.jti ?? null,
      sub: row.sub ?? null,
      issued_before: row.issuedBefore ?? null,
      expires_at: row.expiresAt ?? null,
      created_at: row.createdAt ?? new Date(),
      reason: row.reason ?? null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return toInt(inserted.id);
}

/** Revocations still in force at `now` (not expired), oldest first. */
export async function listRevocations(db: Db, now: Date = new Date()): Promise<Revocation[]> {
  const rows = await db.kysely
    .selectFrom("attic_ts_revocation")
    .select(["id", "jti", "sub", "issued_before", "expires_at", "created_at", "reason"])
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
    .orderBy("id")
    .execute();
  return rows.map((r) => ({
    id: toInt(r.id),
    jti: r.jti,
    sub: r.sub,
    issuedBefore: parseNullableTimestamp(r.issued_before),
    expiresAt: parseNullableTimestamp(r.expires_at),
    createdAt: parseTimestamp(r.created_at),
    reason: r.reason,
  }));
}

/** Delete revocations whose tokens have expired by `now`; returns how many. */
export async function deleteExpiredRevocations(db: Db, now: Date = new Date()): Promise<number> {
  const result = await db.kysely.deleteFrom("attic_ts_revocation").where("expires_at", "is not", null).where("expires_at", "<=", now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Whether a subject revocation (no jti) exists for `sub` (declared revocations are added once). */
export async function hasSubjectRevocation(db: Db, sub: string): Promise<boolean> {
  const row = await db.kysely.selectFrom("attic_ts_revocation").select("id").where("sub", "=", sub).where("jti", "is", null).executeTakeFirst();
  return row !== undefined;
}
