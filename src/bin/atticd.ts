#!/usr/bin/env node
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
