// `atticadm verify [--quick] [--nars] [--repair]` (ours): re-check stored chunks (and with
// --nars whole NARs) against the database; with --repair mark what is broken for re-upload. The
// work is done by admin/repair/verify.ts; this shell opens the configured database and storage
// and prints. Exit code 1 when something broken was found and left unmarked, so a scheduled run
// can alert.
import { openDatabase } from "../../db/connect.ts";
import { loadConfig } from "../../server/config/load.ts";
import { openStorage } from "../repair/open-storage.ts";
import { verifyStorage, type VerifyOptions } from "../repair/verify.ts";
import type { AdminCtx } from "../context.ts";
import { UserError } from "../errors.ts";

export async function run(options: VerifyOptions, ctx: AdminCtx): Promise<void> {
  const { config } = await loadConfig({ path: ctx.configPath, env: ctx.env });
  const db = await openDatabase(config.database.url, { poolSize: 2 });
  const storage = await openStorage(config);
  try {
    const r = await verifyStorage({ db, storage }, options, (line) => ctx.stdout.write(`${line}\n`));
    const broken = r.brokenChunks + r.brokenNars;
    ctx.stdout.write(
      `Checked ${r.chunks} chunks${r.packs > 0 ? ` (${r.packs} packs)` : ""}${options.quick ? " (existence only)" : ` (${r.bytes} bytes read)`}` +
        `${options.nars ? ` and ${r.nars} NARs` : ""}: ${r.brokenChunks} broken chunks, ${r.brokenNars} broken NARs, ${r.affectedPaths} store paths affected.\n`,
    );
    if (broken === 0) return;
    if (options.repair) {
      ctx.stdout.write("Marked them for re-upload: get-missing-paths reports the affected paths, and the next `attic push` of them heals them.\n");
      return;
    }
    throw new UserError(`verify found ${broken} problems; run it again with --repair to mark the affected paths for re-upload`);
  } finally {
    await storage.close?.();
    await db.close();
  }
}
