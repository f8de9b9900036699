// `/healthz`: readiness. 200 when the database answers, 503 otherwise (a load balancer takes a
// replica out while its database is unreachable).
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get("/healthz", async (_request, reply) => {
    try {
      await sql`SELECT 1`.execute(app.deps.db.kysely);
      return reply.type("application/json").send({ status: "ok" });
    } catch (err) {
      return reply.code(503).type("application/json").send({ status: "unavailable", reason: "database unreachable" });
    }
  });
  app.get("/metrics", async (_request, reply) =>
    reply.type("text/plain; version=0.0.4; charset=utf-8").send(app.metrics.render()),
  );
}
