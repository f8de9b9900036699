#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2
// The line above is atticd's memory tuning, measured with bench/upload-memory.ts: a small young
// generation (V8's default grows to 64 MiB of mostly garbage under upload load) and two malloc
// arenas (one per thread grows RSS with freed chunk buffers). `npm start`, the systemd units and
// the test helpers run atticd with the same settings (test/unit/deploy checks they agree); so
// does the launcher when it starts a supported Node in place of an older one (it passes on
// this process's flags and environment).
// `atticd`, the server. Everything lives in src/server; this file only runs it (on a supported
// Node: launch.ts).
import { launch } from "./launch.ts";

launch("atticd", () => import("../server/main.ts").then(({ main }) => main(process.argv)), (code) => process.exit(code));
