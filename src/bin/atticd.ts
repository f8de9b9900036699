#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2
// The line above is atticd's memory tuning, measured with bench/upload-memory.ts: a small young
// generation (V8's default grows to 64 MiB of mostly garbage under upload load) and two malloc
// arenas (one per thread grows RSS with freed chunk buffers). `npm start`, the systemd units and
// the test helpers run atticd with the same settings (test/unit/deploy checks they agree).
import { main, UsageError } from "../server/main.ts";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`Error: ${(err as Error).message}`);
      process.exit(2);
    }
    const e = err as Error & { userFacing?: boolean };
    if (e.name === "ConfigError" || e.userFacing) {
      console.error(`Error: ${e.message}`);
      process.exit(1);
    }
    console.error("atticd: internal error (please report it with the output below):");
    console.error(err);
    process.exit(1);
  },
);
