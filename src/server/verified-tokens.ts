// Tokens whose signature was verified, remembered so that a client sending the same token on
// every request (Nix sends its netrc password with each narinfo) costs one HMAC or RSA check
// per process, not one per request. Only the signature check is remembered: the time and
// binding checks run on every use, so an expired token stops working on the second it expires.
// Entries are keyed by the token's SHA-256, so a lookup compares digests, never token text.
// Anything that can invalidate a token before it expires (a revocation list) must be checked on
// every use too, never remembered here.
import { createHash } from "node:crypto";
import type { Claims } from "../token/claims.ts";
import { claimsValidNow, verifyToken, type JwtSigning, type VerifyOptions } from "../token/jwt.ts";
import { LruCache } from "./lru.ts";

const DEFAULT_SIZE = 4096;

export class VerifiedTokenCache {
  readonly #signing: JwtSigning;
  readonly #options: VerifyOptions;
  readonly #verified: LruCache<string, Claims>;
  readonly #clock: () => number;

  constructor(signing: JwtSigning, options: Omit<VerifyOptions, "now"> = {}, opts: { size?: number; clock?: () => number } = {}) {
    this.#signing = signing;
    this.#options = options;
    this.#verified = new LruCache(opts.size ?? DEFAULT_SIZE);
    this.#clock = opts.clock ?? Date.now;
  }

  /** The claims of a valid token, else null (as `verifyToken`). */
  async verify(token: string): Promise<Claims | null> {
    const known = this.verifyKnown(token);
    if (known !== undefined) return known;
    const claims = await verifyToken(token, this.#signing, { ...this.#options, now: this.#clock() });
    if (claims) this.#verified.set(keyOf(token), claims);
    return claims;
  }

  /**
   * Without waiting: the claims of a token whose signature was verified before (checked against
   * the clock now), null when it is no longer valid, undefined when it must be verified.
   */
  verifyKnown(token: string): Claims | null | undefined {
    const key = keyOf(token);
    const known = this.#verified.get(key);
    if (!known) return undefined;
    if (claimsValidNow(known, { ...this.#options, now: this.#clock() })) return known;
    this.#verified.delete(key);
    return null;
  }
}

function keyOf(token: string): string {
  return createHash("sha256").update(token).digest("base64");
}
