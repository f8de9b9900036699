// POST /_api/v1/oidc/exchange (ours, issue 18): a CI job's OIDC ID token for a short-lived Attic
// token. Needs no Attic token; the ID token is the credential. Every refusal is 401
// InvalidIdToken with the reason (oidc/verify.ts).
import type { FastifyInstance } from "fastify";
import type { OidcExchangeResponse } from "../../api/v1.ts";
import { signToken } from "../../token/jwt.ts";
import { invalidIdToken } from "../errors.ts";
import { asObject, field, isString, requireJsonContentType } from "../json-body.ts";
import { exchangedClaims } from "../oidc/rules.ts";
import { IdTokenVerifier } from "../oidc/verify.ts";

export async function oidcRoutes(app: FastifyInstance): Promise<void> {
  const { config } = app.deps;
  const verifier = new IdTokenVerifier(config.oidc.issuers, config.jwt.timeTolerance);
  app.post("/_api/v1/oidc/exchange", { preValidation: requireJsonContentType }, async (request, reply) => {
    const idToken = field(asObject(request.body), "id_token", isString, "a string", true);
    const { issuer, claims: idClaims } = await verifier.verify(idToken);
    const claims = exchangedClaims(issuer, idClaims);
    if (!claims) throw invalidIdToken(`no rule of issuer "${issuer.name}" grants anything to this identity`);
    const token = await signToken(claims, config.jwt.signing, { issuer: config.jwt.tokenBoundIssuer, audiences: config.jwt.tokenBoundAudiences });
    request.log.info({ issuer: issuer.name, sub: claims.sub, jti: claims.jti, caches: [...claims.caches.keys()] }, "OIDC token exchanged");
    const res: OidcExchangeResponse = { token, expires_at: claims.exp! };
    return reply.type("application/json").send(res);
  });
}
