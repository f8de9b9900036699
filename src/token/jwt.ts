// Verify and mint Attic JWTs. Verification follows jwt-simple as upstream configures it:
// the header's `alg` must equal the configured algorithm, `typ` (if any) must be JWT or end with
// +JWT, and the time claims are checked with zero tolerance (exp ≥ now ≥ nbf, iat ≤ now) unless
// the caller allows some clock skew (`toleranceSeconds`, from `jwt.time-tolerance`).
// Anything wrong makes the caller anonymous: verifyToken returns null, never throws.
import type { KeyObject } from "node:crypto";
import { CompactSign, compactVerify } from "jose";
import { parseClaims, serializeClaims, type Claims } from "./claims.ts";
import type { JwtSigning } from "./keys.ts";

export type { JwtSigning } from "./keys.ts";
export {
  decodeSigningConfig,
  decodeHs256SecretBase64,
  decodeRs256SecretBase64,
  decodeRs256PubkeyBase64,
  SigningKeyError,
} from "./keys.ts";
export { parseAuthorizationHeader } from "./authorization.ts";

/** jwt-simple's limit on the encoded header */
const MAX_HEADER_LENGTH = 8192;

export interface VerifyOptions {
  /** `jwt.token-bound-issuer`: the token's `iss` must equal it */
  boundIssuer?: string | null;
  /** `jwt.token-bound-audiences`: the token's `aud` must contain one of them */
  boundAudiences?: readonly string[] | null;
  /** milliseconds since the epoch; tests pin the clock */
  now?: number;
  /** `jwt.time-tolerance` (ours, as upstream's open PR #336): seconds of clock skew allowed on iat/nbf/exp; default 0 */
  toleranceSeconds?: number;
}

/** The configured key is an RS256 public key: it verifies tokens but cannot mint them. */
export class CannotSignError extends Error {
  /** a user error: the CLIs print the message alone (src/cli/errors.ts) */
  readonly userFacing = true;
  constructor() {
    super("Pubkey-only JWT authentication cannot create signed JWTs");
    this.name = "CannotSignError";
  }
}

export interface SignOptions {
  issuer?: string | null;
  audiences?: readonly string[] | null;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Unpadded base64url as jwt-simple reads it; null for anything else. */
function decodeSegment(segment: string): Buffer | null {
  if (!BASE64URL.test(segment) || segment.length % 4 === 1) return null;
  return Buffer.from(segment, "base64url");
}

function parseJsonSegment(segment: string): unknown {
  const bytes = decodeSegment(segment);
  if (!bytes) return undefined;
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

function headerAcceptable(header: unknown, alg: string): boolean {
  if (typeof header !== "object" || header === null || Array.isArray(header)) return false;
  const { alg: tokenAlg, typ } = header as { alg?: unknown; typ?: unknown };
  if (typ !== undefined && typ !== null) {
    if (typeof typ !== "string") return false;
    const upper = typ.toUpperCase();
    if (upper !== "JWT" && !upper.endsWith("+JWT")) return false;
  }
  return tokenAlg === alg;
}

function verificationKey(signing: JwtSigning): Uint8Array | KeyObject {
  return signing.alg === "HS256" ? signing.secret : signing.publicKey;
}

/** Verify a compact JWT; the claims if it is valid now, else null. */
export async function verifyToken(token: string, signing: JwtSigning, options: VerifyOptions = {}): Promise<Claims | null> {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const [headerB64, payloadB64, signatureB64] = parts as [string, string, string];
  if (headerB64.length > MAX_HEADER_LENGTH) return null;
  if (!headerAcceptable(parseJsonSegment(headerB64), signing.alg)) return null;
  if (!decodeSegment(signatureB64) || !decodeSegment(payloadB64)) return null;

  try {
    await compactVerify(token, verificationKey(signing), { algorithms: [signing.alg] });
  } catch {
    return null;
  }

  const claims = parseClaims(parseJsonSegment(payloadB64));
  if (!claims) return null;
  return claimsValidNow(claims, options) ? claims : null;
}

/** The time and binding checks alone, for claims whose signature was verified earlier. */
export function claimsValidNow(claims: Claims, options: VerifyOptions): boolean {
  const now = options.now ?? Date.now();
  const tolerance = (options.toleranceSeconds ?? 0) * 1000;
  if (claims.iat !== undefined && claims.iat * 1000 - tolerance > now) return false;
  if (claims.nbf !== undefined && claims.nbf * 1000 - tolerance > now) return false;
  if (claims.exp !== undefined && claims.exp * 1000 + tolerance < now) return false;

  const issuer = options.boundIssuer;
  if (issuer !== undefined && issuer !== null && claims.iss !== issuer) return false;

  const audiences = options.boundAudiences;
  if (audiences !== undefined && audiences !== null) {
    if (claims.aud === undefined) return false;
    const carried = typeof claims.aud === "string" ? [claims.aud] : claims.aud;
    if (!carried.some((a) => audiences.includes(a))) return false;
  }
  return true;
}

/**
 * Sign `claims` (plus `iss`/`aud` from the options; audiences as an array) into a compact JWT
 * with the header `{"alg":…,"typ":"JWT"}`. Throws for a verify-only key.
 */
export async function signToken(claims: Claims, signing: JwtSigning, options: SignOptions = {}): Promise<string> {
  let key: Uint8Array | KeyObject;
  if (signing.alg === "HS256") key = signing.secret;
  else if (signing.privateKey) key = signing.privateKey;
  else throw new CannotSignError();

  const full: Claims = { ...claims };
  if (options.issuer !== undefined && options.issuer !== null) full.iss = options.issuer;
  if (options.audiences !== undefined && options.audiences !== null) full.aud = [...options.audiences];
  const payload = new TextEncoder().encode(serializeClaims(full));
  return new CompactSign(payload).setProtectedHeader({ alg: signing.alg, typ: "JWT" }).sign(key);
}
