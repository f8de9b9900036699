// A local OIDC issuer for the token-exchange tests: an RS256 key pair made by the test, its JWKS
// served over HTTP on loopback, and ID tokens minted with any claims, times or header. It also
// answers like GitHub Actions' ID token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`): GET
// /actions-token?audience=… with `Authorization: bearer <request token>` → `{"value": <ID token>}`.
import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";

export interface LocalIssuer {
  /** the `iss` of its tokens */
  issuer: string;
  jwksUrl: string;
  /** an ID token signed with the issuer's key; `claims` override the defaults (iss, aud, sub, iat, exp) */
  mint(claims: JWTPayload, opts?: { key?: CryptoKey; kid?: string }): Promise<string>;
  /** a key the issuer does not publish (forged tokens) */
  otherKey: CryptoKey;
  /** ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN of a GitHub job with these claims */
  actionsEnv(claims: JWTPayload): Record<string, string>;
  /** requests the JWKS endpoint has answered */
  jwksRequests(): number;
  close(): Promise<void>;
}

export async function startLocalIssuer(audience: string): Promise<LocalIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const other = await generateKeyPair("RS256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "test-key", alg: "RS256", use: "sig" };
  let served = 0;
  const jobs = new Map<string, JWTPayload>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/.well-known/jwks") {
      served++;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
    } else if (url.pathname === "/actions-token") {
      const job = jobs.get((req.headers.authorization ?? "").replace(/^bearer /i, ""));
      const audience = url.searchParams.get("audience");
      if (!job || !audience) return void res.writeHead(403).end("bad request token");
      void mint({ ...job, aud: audience }).then((value) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ count: 1, value })));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  const issuer = `http://127.0.0.1:${address.port}`;
  const mint = (claims: JWTPayload, opts: { key?: CryptoKey; kid?: string } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: issuer, aud: audience, sub: "repo:org/app:ref:refs/heads/main", iat: now, nbf: now, exp: now + 300, ...claims })
      .setProtectedHeader({ alg: "RS256", kid: opts.kid ?? "test-key", typ: "JWT" })
      .sign(opts.key ?? privateKey);
  };
  return {
    issuer,
    jwksUrl: `${issuer}/.well-known/jwks`,
    otherKey: other.privateKey,
    jwksRequests: () => served,
    mint,
    actionsEnv(claims) {
      const requestToken = `job-${jobs.size + 1}`;
      jobs.set(requestToken, claims);
      return { ACTIONS_ID_TOKEN_REQUEST_URL: `${issuer}/actions-token?api-version=2.0`, ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
