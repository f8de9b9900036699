// `metrics.listen`: /metrics on a socket of its own (a private interface or port), so the public
// listener never exposes it. A bare node:http server: one route, no body, nothing else to serve.
import { createServer, type Server } from "node:http";
import type { Metrics } from "./metrics.ts";
import { METRICS_CONTENT_TYPE, metricsAuthorized } from "./routes/health.ts";

export async function startMetricsListener(metrics: Metrics, address: { host: string; port: number }, token: string | null): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("Not found\n");
      return;
    }
    if (!metricsAuthorized(token, req.headers.authorization)) {
      res.writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": "Bearer" }).end("Unauthorized\n");
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE }).end(req.method === "HEAD" ? undefined : text),
      () => res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("metrics unavailable\n"),
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
