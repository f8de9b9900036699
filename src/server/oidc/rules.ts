// From a verified ID token to the claims of the Attic token it is exchanged for (ours, issue 18):
// the union of the grants of every `[[oidc.issuers.rules]]` whose claim patterns all match. A
// token claim matches a pattern as a cache pattern does (`*` matches any text, `/` included);
// numbers and booleans are compared as their text; a missing claim never matches.
import { randomUUID } from "node:crypto";
import type { JWTPayload } from "jose";
import { grant, type Claims } from "../../token/claims.ts";
import { matchPattern } from "../../token/permissions.ts";
import type { OidcIssuerConfig, OidcRule } from "../config/types.ts";

function claimText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return null;
}

export function ruleApplies(rule: OidcRule, idClaims: JWTPayload): boolean {
  return Object.entries(rule.claims).every(([name, patterns]) => {
    const text = claimText(idClaims[name]);
    return text !== null && patterns.some((p) => matchPattern(p, text));
  });
}

/** The Attic claims for this identity, or null when no rule grants anything. */
export function exchangedClaims(issuer: OidcIssuerConfig, idClaims: JWTPayload, now: number = Date.now()): Claims | null {
  const seconds = Math.floor(now / 1000);
  const claims: Claims = {
    iat: seconds,
    exp: seconds + issuer.tokenValidity,
    nbf: seconds,
    sub: `oidc:${issuer.name}:${String(idClaims.sub)}`,
    jti: randomUUID(),
    caches: new Map(),
  };
  for (const rule of issuer.rules) {
    if (!ruleApplies(rule, idClaims)) continue;
    for (const { pattern, permission } of rule.grants) grant(claims, pattern, permission);
  }
  return claims.caches.size === 0 ? null : claims;
}
