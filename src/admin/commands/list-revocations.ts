// `atticadm list-revocations` (ours, issue 18): the revocations in force, one per line.
import { openDatabase } from "../../db/connect.ts";
import { listRevocations } from "../../db/queries/revocations.ts";
import { loadConfig } from "../../server/config/load.ts";
import type { AdminCtx } from "../context.ts";

export async function run(ctx: AdminCtx): Promise<void> {
  const { config } = await loadConfig({ path: ctx.configPath, env: ctx.env });
  const db = await openDatabase(config.database.url, { poolSize: 1 });
  try {
    const rows = await listRevocations(db);
    if (rows.length === 0) {
      ctx.stdout.write("No revocations.\n");
      return;
    }
    for (const r of rows) {
      const what =
        r.jti !== null
          ? `jti ${r.jti}${r.sub === null ? "" : ` (sub ${JSON.stringify(r.sub)})`}`
          : `sub ${JSON.stringify(r.sub)} issued until ${r.issuedBefore?.toISOString() ?? "any time"}`;
      const until = r.expiresAt === null ? "kept for good" : `kept until ${r.expiresAt.toISOString()}`;
      const reason = r.reason === null ? "" : `, reason: ${r.reason}`;
      ctx.stdout.write(`${r.id}\t${what}\trevoked ${r.createdAt.toISOString()}, ${until}${reason}\n`);
    }
  } finally {
    await db.close();
  }
}
