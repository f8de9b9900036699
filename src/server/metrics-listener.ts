// `metrics.listen`: /metrics on a socket of its own (a private interface or port), so the public
// listener never exposes it. A bare node:http server: one route, no body, nothing else to serve.
import { createServer, type Server } from "node:http";
import { internalError, notFound, unauthorized, type ServerError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import { METRICS_CONTENT_TYPE, metricsAuthorized } from "./routes/health.ts";

export async function startMetricsListener(metrics: Metrics, address: { host: string; port: number }, token: string | null): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    // the catalogue's answers, in Attic's JSON shape, as on the main listener
    const fail = (error: ServerError, headers: Record<string, string> = {}) =>
      res.writeHead(error.status, { "content-type": "application/json", ...headers }).end(JSON.stringify(error.toJSON()));
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) return fail(notFound());
    if (!metricsAuthorized(token, req.headers.authorization)) return fail(unauthorized(), { "www-authenticate": "Bearer" });
    metrics.render().then(
      (text) => res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE }).end(req.method === "HEAD" ? undefined : text),
      (err: unknown) => fail(internalError(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
