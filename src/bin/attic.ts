#!/usr/bin/env node
// `attic`, the client. Everything lives in src/client; this file only runs it (on a supported
// Node: launch.ts).
import { launch } from "./launch.ts";

launch(
  "attic",
  async () => {
    // A short command is mostly Node start-up: reuse compiled code between runs (a cache in
    // the system temp dir; NODE_DISABLE_COMPILE_CACHE=1 turns it off).
    const { enableCompileCache } = await import("node:module");
    enableCompileCache();
    const { main } = await import("../client/main.ts");
    return main(process.argv);
  },
  (code) => {
    process.exitCode = code;
    // Leave time for stdout to drain, but never hang on a forgotten handle.
    setTimeout(() => process.exit(code), 1000).unref();
  },
);
