// Verifying a CI job's OIDC ID token (ours, issue 18) with jose: the issuer is chosen by the
// token's `iss` among `[[oidc.issuers]]`, its JWKS is fetched (and cached by jose) from the
// configured URL, and the signature, `iss`, `aud` and times are checked. Every refusal names its
// reason, which the client shows: a CI author must be able to tell a wrong audience from an
// expired token without server logs.
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import type { OidcIssuerConfig } from "../config/types.ts";
import { invalidIdToken } from "../errors.ts";

/** Asymmetric algorithms only: an HMAC "ID token" would be signed with a key the issuer published. */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
/** Longer than any real ID token (GitHub's are ~1.5 KB), short enough to refuse junk cheaply. */
const MAX_ID_TOKEN_LENGTH = 16 * 1024;

export interface VerifiedIdToken {
  issuer: OidcIssuerConfig;
  claims: JWTPayload;
}

export class IdTokenVerifier {
  readonly #issuers: readonly OidcIssuerConfig[];
  readonly #toleranceSeconds: number;
  readonly #jwks = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  constructor(issuers: readonly OidcIssuerConfig[], toleranceSeconds: number) {
    this.#issuers = issuers;
    this.#toleranceSeconds = toleranceSeconds;
  }

  /** The issuer and claims of a valid ID token; throws 401 InvalidIdToken naming the reason. */
  async verify(idToken: string): Promise<VerifiedIdToken> {
    if (this.#issuers.length === 0) throw invalidIdToken("this server trusts no OIDC issuer ([[oidc.issuers]] is not configured)");
    if (idToken.length > MAX_ID_TOKEN_LENGTH) throw invalidIdToken("the ID token is too long");
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(idToken).alg;
      iss = decodeJwt(idToken).iss;
    } catch {
      throw invalidIdToken("not a JWT");
    }
    if (alg === undefined || alg === "none") throw invalidIdToken("the ID token is unsigned (alg none)");
    if (typeof alg !== "string" || !ALGORITHMS.includes(alg)) throw invalidIdToken(`the ID token's algorithm ${JSON.stringify(alg)} is not accepted`);
    const issuer = this.#issuers.find((i) => i.issuer === iss);
    if (!issuer) throw invalidIdToken(`the issuer ${JSON.stringify(iss ?? null)} is not trusted`);

    try {
      const { payload } = await jwtVerify(idToken, this.#keys(issuer), {
        issuer: issuer.issuer,
        audience: issuer.audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.#toleranceSeconds,
        requiredClaims: ["exp", "sub"],
      });
      return { issuer, claims: payload };
    } catch (error) {
      throw invalidIdToken(reasonOf(error, issuer));
    }
  }

  #keys(issuer: OidcIssuerConfig) {
    let keys = this.#jwks.get(issuer.name);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(issuer.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
      this.#jwks.set(issuer.name, keys);
    }
    return keys;
  }
}

function reasonOf(error: unknown, issuer: OidcIssuerConfig): string {
  if (error instanceof errors.JWTExpired) return "the ID token has expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return `the ID token's audience is not ${JSON.stringify(issuer.audience)}`;
    if (error.claim === "iss") return `the issuer is not ${JSON.stringify(issuer.issuer)}`;
    if (error.claim === "nbf" || error.claim === "iat") return `the ID token is not valid yet (${error.claim})`;
    return `the ID token's ${error.claim} claim is invalid: ${error.message}`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the ID token's signature does not verify";
  if (error instanceof errors.JWKSNoMatchingKey) return `no key of the issuer's JWKS (${issuer.jwksUrl}) matches the ID token`;
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return `the issuer's JWKS (${issuer.jwksUrl}) cannot be read`;
  if (error instanceof errors.JOSEAlgNotAllowed) return "the ID token's algorithm is not accepted";
  if (error instanceof errors.JOSEError) return `the ID token is invalid (${error.code})`;
  // a JWKS fetch that failed at the socket (connection refused, DNS)
  return `the issuer's JWKS (${issuer.jwksUrl}) cannot be read`;
}
