// What every request carries past the first hook (upstream's pipeline): the Host restriction,
// the verified token's claims, and whether the client says it came over https.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Claims } from "../token/claims.ts";
import { tokenFromRequest } from "./auth.ts";
import type { Config } from "./config/types.ts";
import { requestError } from "./errors.ts";
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

/** Sets `request.attic` on every request, or rejects it (no Host, a Host not allowed). */
export function addRequestState(app: FastifyInstance, config: Config): void {
  app.decorateRequest("attic", null as unknown as RequestState);
  const tokens = new VerifiedTokenCache(config.jwt.signing, {
    boundIssuer: config.jwt.tokenBoundIssuer ?? undefined,
    boundAudiences: config.jwt.tokenBoundAudiences ?? undefined,
  });
  app.addHook("onRequest", async (request) => {
    const host = request.headers.host;
    if (!host) throw requestError("Missing Host header");
    const allowed = config.allowedHosts;
    // /healthz (ours) answers any Host: load balancers and container health checks probe by IP or service name
    if (allowed.length > 0 && !allowed.includes(host) && request.url !== "/healthz") throw requestError("Bad Host");
    request.attic = {
      claims: await claimsOf(request, tokens),
      host,
      https: request.headers["x-forwarded-proto"] === "https",
    };
  });
}

async function claimsOf(request: FastifyRequest, tokens: VerifiedTokenCache): Promise<Claims | null> {
  const token = tokenFromRequest(request);
  if (!token) return null;
  return tokens.verify(token);
}
