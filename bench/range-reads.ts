// Where a pack's ranged reads belong (storage/local-range.ts): on the libuv thread pool, as today,
// or on a CPU worker like the whole-file reads of chunk files (storage/local-reader.ts). Reads one
// large file from start to end, as a download reads a run of a pack, three ways, alternated:
//   libuv:        FileRangeStream (positioned reads on the libuv pool, `ahead` pieces in flight)
//   worker:       a worker thread reading each piece with readSync and moving it back, `ahead` in
//                 flight (what a pool job per piece would cost: one message each way)
// and prints, per way, the wall time, the main thread's CPU and the whole process's CPU (median
// of the runs), with a warm page cache, and with a cold one when run as root.
//
//   node bench/range-reads.ts [--size-mb 512] [--runs 5] [--piece-kb 256] [--ahead 4] [--file PATH]
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { execFileSync } from "node:child_process";
import { FileRangeStream } from "../src/storage/local-range.ts";

const { values } = parseArgs({
  options: {
    "size-mb": { type: "string", default: "512" },
    runs: { type: "string", default: "5" },
    "piece-kb": { type: "string", default: "256" },
    ahead: { type: "string", default: "4" },
    file: { type: "string" },
  },
});
const piece = Number(values["piece-kb"]) * 1024;
const ahead = Number(values.ahead);
const runs = Number(values.runs);
const TICK = 100;

/** CPU seconds of the main thread and of the whole process. */
function cpu(): { main: number; all: number } {
  const fields = (path: string) => readFileSync(path, "utf8").split(") ")[1]!.split(" ");
  const m = fields(`/proc/self/task/${process.pid}/stat`);
  const a = fields("/proc/self/stat");
  return { main: (Number(m[11]) + Number(m[12])) / TICK, all: (Number(a[11]) + Number(a[12])) / TICK };
}

const WORKER = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
parentPort.on("message", ({ fd, position, length, seq }) => {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = fs.readSync(fd, buffer, filled, length - filled, position + filled);
    if (n === 0) throw new Error("short file");
    filled += n;
  }
  parentPort.postMessage({ seq, buffer }, [buffer.buffer]);
});
`;

async function viaLibuv(path: string, size: number): Promise<number> {
  let got = 0;
  const stream = new FileRangeStream(await open(path, "r"), 0, size, { piece, ahead });
  await pipeline(
    stream,
    new Writable({
      write(b: Buffer, _e, done) {
        got += b.length;
        done();
      },
    }),
  );
  return got;
}

async function viaWorker(worker: Worker, path: string, size: number): Promise<number> {
  const fd = openSync(path, "r");
  try {
    let next = 0;
    let seq = 0;
    let got = 0;
    let inFlight = 0;
    await new Promise<void>((resolve, reject) => {
      const ask = () => {
        while (inFlight < ahead && next < size) {
          const length = Math.min(piece, size - next);
          worker.postMessage({ fd, position: next, length, seq: seq++ });
          next += length;
          inFlight++;
        }
        if (inFlight === 0) {
          worker.off("message", onMessage);
          resolve();
        }
      };
      const onMessage = ({ buffer }: { buffer: Uint8Array }) => {
        inFlight--;
        got += buffer.byteLength;
        ask();
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
      ask();
    });
    return got;
  } finally {
    closeSync(fd);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const dir = mkdtempSync(join(tmpdir(), "attic-range-bench-"));
try {
  let path = values.file;
  if (!path) {
    path = join(dir, "pack");
    const fd = openSync(path, "w");
    const block = randomBytes(16 * 1024 * 1024);
    for (let i = 0; i < Number(values["size-mb"]) / 16; i++) writeSync(fd, block);
    closeSync(fd);
  }
  const size = statSync(path).size;
  const worker = new Worker(WORKER, { eval: true });
  const ways: [string, () => Promise<number>][] = [
    ["libuv", () => viaLibuv(path, size)],
    ["worker", () => viaWorker(worker, path, size)],
  ];
  const cold = process.getuid?.() === 0;
  console.log(`${(size / 1e6).toFixed(0)} MB read whole in pieces of ${piece / 1024} KiB, ${ahead} in flight; ${runs} runs, median`);
  for (const cache of cold ? ["warm", "cold"] : ["warm"]) {
    const results = new Map<string, { wall: number[]; main: number[]; all: number[] }>();
    await viaLibuv(path, size); // warm the cache (and the code)
    for (let run = 0; run < runs; run++) {
      for (const [name, read] of ways) {
        if (cache === "cold") {
          execFileSync("sync");
          writeFileSync("/proc/sys/vm/drop_caches", "3\n");
        }
        const c0 = cpu();
        const t0 = process.hrtime.bigint();
        const got = await read();
        const wall = Number(process.hrtime.bigint() - t0) / 1e9;
        const c1 = cpu();
        if (got !== size) throw new Error(`${name}: ${got} bytes of ${size}`);
        const r = results.get(name) ?? { wall: [], main: [], all: [] };
        r.wall.push(wall);
        r.main.push(c1.main - c0.main);
        r.all.push(c1.all - c0.all);
        results.set(name, r);
      }
    }
    for (const [name, r] of results) {
      console.log(
        `${cache.padEnd(5)} ${name.padEnd(7)} ${(size / 1e6 / median(r.wall)).toFixed(0).padStart(6)} MB/s  wall ${median(r.wall).toFixed(3)} s  main thread CPU ${median(r.main).toFixed(2)} s  process CPU ${median(r.all).toFixed(2)} s`,
      );
    }
  }
  await worker.terminate();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
