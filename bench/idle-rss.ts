// atticd's resident set at rest once each kind of work has run once: a small path pushed, its NAR
// pulled (chunk files read whole with `--storage-extra "packs = false"`), then nothing for a while.
// What stays is the process's fixed cost: the main isolate, the pool's worker isolates, caches.
// --restart: atticd is restarted between the push and the pull (a process that has only served).
// --path: push and pull this folder instead (e.g. /usr/lib/jvm: a large NAR).
//   node bench/idle-rss.ts [--backends sqlite-local] [--runs 3] [--wait 10] [--storage-extra "packs = false"] [--restart] [--path DIR]
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { addToStore, startBenchServer } from "./lib/atticd.ts";
import { stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    backends: { type: "string", default: "sqlite-local" },
    runs: { type: "string", default: "3" },
    wait: { type: "string", default: "10" },
    "storage-extra": { type: "string", default: "" },
    restart: { type: "boolean", default: false },
    path: { type: "string" },
  },
});

function state(pid: number): { rss: number; threads: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rss: field("VmRSS") / 1024, threads: field("Threads") };
}

const work = mkdtempSync(join(tmpdir(), "attic-bench-idle-"));
try {
  // 4 MB of incompressible files: some 60 chunks, above every chunking threshold
  let folder = values.path;
  if (!folder) {
    folder = join(work, "path");
    mkdirSync(folder);
    writeFileSync(join(folder, "a.bin"), randomBytes(3_000_000));
    writeFileSync(join(folder, "b.bin"), randomBytes(1_000_000));
  }
  const info = addToStore(folder);
  const hash = info.path.slice(11, 43);
  for (const spec of values.backends!.split(",")) {
    for (let run = 1; run <= Number(values.runs); run++) {
      const server = await startBenchServer(spec, { type: "zstd", level: 3 }, "", {}, values["storage-extra"]);
      try {
        const fresh = state(server.proc.child.pid!);
        await server.createCache("pub", true);
        await server.push("pub", info);
        if (values.restart) await server.restart();
        const narinfo = await (await fetch(`${server.url}/pub/${hash}.narinfo`)).text();
        const url = /^URL: (.+)$/m.exec(narinfo)![1]!;
        const body = Buffer.from(await (await fetch(`${server.url}/pub/${url}`)).arrayBuffer());
        if (body.length === 0) throw new Error("empty NAR");
        await sleep(Number(values.wait) * 1000);
        const rest = state(server.proc.child.pid!);
        console.log(
          `${spec} run ${run}: fresh ${fresh.rss.toFixed(1)} MiB (${fresh.threads} threads); after a push${values.restart ? ", a restart" : ""} and a pull, ${values.wait} s at rest: ${rest.rss.toFixed(1)} MiB (${rest.threads} threads)`,
        );
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  await stopBackendServices();
  rmSync(work, { recursive: true, force: true });
}
