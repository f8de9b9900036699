// What every request carries past the first hook (upstream's pipeline): the Host restriction,
// the verified token's claims, and whether the client says it came over https.
import type { FastifyInstance } from "fastify";
import type { Claims } from "../token/claims.ts";
import { tokenFromRequest } from "./auth.ts";
import type { Config } from "./config/types.ts";
import type { Db } from "../db/connect.ts";
import { requestError, tokenRevoked } from "./errors.ts";
import { RevocationList } from "./revocations.ts";
import { VerifiedTokenCache } from "./verified-tokens.ts";

export interface RequestState {
  claims: Claims | null;
  host: string;
  /** the client claims https through X-Forwarded-Proto (untrusted, as upstream) */
  https: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    attic: RequestState;
  }
}

/** Sets `request.attic` on every request, or rejects it (no Host, a Host not allowed, a revoked token). */
export function addRequestState(app: FastifyInstance, config: Config, db: Db): void {
  app.decorateRequest("attic", null as unknown as RequestState);
  const tokens = new VerifiedTokenCache(config.jwt.signing, {
    boundIssuer: config.jwt.tokenBoundIssuer ?? undefined,
    boundAudiences: config.jwt.tokenBoundAudiences ?? undefined,
    toleranceSeconds: config.jwt.timeTolerance,
  });
  const revocations = new RevocationList(db);
  // a callback hook: a request without a token (public caches) or with a token already verified
  // and a fresh revocation list is answered without a promise or an extra turn
  app.addHook("onRequest", (request, _reply, done) => {
    const host = request.headers.host;
    if (!host) return done(requestError("Missing Host header"));
    const allowed = config.allowedHosts;
    // /healthz (ours) answers any Host: load balancers and container health checks probe by IP or service name
    if (allowed.length > 0 && !allowed.includes(host) && request.url !== "/healthz") return done(requestError("Bad Host"));
    const https = request.headers["x-forwarded-proto"] === "https";
    const token = tokenFromRequest(request);
    if (!token) {
      request.attic = { claims: null, host, https };
      return done();
    }
    const claims = tokens.verifyKnown(token);
    const revoked = claims === undefined ? undefined : claims && revocations.isRevokedNow(claims);
    if (claims !== undefined && revoked !== undefined) {
      // checked on every use, after the signature cache: a revoked token is refused, not made anonymous
      if (revoked) return done(tokenRevoked());
      request.attic = { claims, host, https };
      return done();
    }
    void (async () => {
      const verified = await tokens.verify(token);
      if (verified && (await revocations.isRevoked(verified))) throw tokenRevoked();
      request.attic = { claims: verified, host, https };
    })().then(() => done(), done);
  });
}
