// Tokens minted WITHOUT the project's token code: plain HMAC-SHA256 over base64url JSON, in
// upstream's claim format. Tests use these so a bug in src/token cannot hide itself.
import { createHmac, randomBytes } from "node:crypto";

export type Flags = Partial<Record<"r" | "w" | "d" | "cc" | "cr" | "cq" | "cd", 0 | 1 | number | boolean>>;

export const ALL: Flags = { r: 1, w: 1, d: 1, cc: 1, cr: 1, cq: 1, cd: 1 };

const b64url = (v: string | Buffer) => Buffer.from(v).toString("base64url");

export function mintHs256(secret: Buffer, claims: Record<string, unknown>, header: Record<string, unknown> = { typ: "JWT", alg: "HS256" }): string {
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createHmac("sha256", secret).update(signingInput).digest("base64url");
  return `${signingInput}.${sig}`;
}

export function atticClaims(sub: string, caches: Record<string, Flags>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { exp: now + 3600, nbf: now - 10, sub, "https://jwt.attic.rs/v1": { caches }, ...extra };
}

export function newSecret(): Buffer {
  return randomBytes(64);
}
