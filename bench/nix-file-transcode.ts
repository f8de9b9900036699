// What serving a URL `nix copy` uploaded costs, per format (docs/nix-protocol.md): the NAR of a
// folder of real binaries, stored as the server stores chunks (zstd level 8, the default), then
// for each format: the stored chunks as they are (`.zst`), decoded (`.nar`), or decoded and
// re-encoded at the cheapest level (createNixFileEncoder). Anchors in the same run: decoding the
// stored zstd alone, and what the pushing Nix spent (xz preset 6, bzip2 -9; brotli at quality 5
// stands in for Nix's 11, too slow to run here), so each figure reads as a ratio. xz preset 0 is
// shown for the record: it is what "the cheapest xz" would cost, and why xz is stored instead.
//
//   node bench/nix-file-transcode.ts [DIR]     (default /usr/lib/postgresql)
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { Duplex, Readable, Writable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import lzma from "lzma-native";
import { createNixFileEncoder, NIX_FILE_ENCODE_LEVELS } from "../src/compression/nix-file-encode.ts";
import { compressBuffer, decompressBuffer } from "../src/compression/index.ts";
import { childrenCpuSeconds } from "./lib/cpu.ts";

const dir = process.argv[2] ?? (existsSync("/usr/lib/postgresql") ? "/usr/lib/postgresql" : "/usr/share/doc");
const MB = 1e6;
const CHUNK = 64 * 1024;

function dump(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("nix-store", ["--dump", path], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, NIX_REMOTE: "" } });
    const out: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`nix-store --dump exited with ${code}`))));
  });
}

const children = new Map<Duplex | Transform, ChildProcess>();

/** Wall seconds, CPU seconds (this process and its children) and output bytes of one pass. */
async function measure(label: string, input: () => Readable, encoder: () => Transform | Duplex | null, narSize: number): Promise<void> {
  const cpu0 = process.cpuUsage();
  const child0 = childrenCpuSeconds();
  const t0 = performance.now();
  let out = 0;
  const sink = new Writable({ write: (b: Buffer, _e, cb) => ((out += b.length), cb()) });
  const enc = encoder();
  await (enc ? pipeline(input(), enc, sink) : pipeline(input(), sink));
  // a child process (bzip2) counts once it has been waited for
  const child = enc ? children.get(enc) : undefined;
  if (child && child.exitCode === null) await once(child, "exit");
  await new Promise((r) => setImmediate(r));
  const wall = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  const cpu = (used.user + used.system) / 1e6 + (childrenCpuSeconds() - child0);
  const line = [
    label.padEnd(34),
    `${wall.toFixed(2)} s`.padStart(9),
    `${cpu.toFixed(2)} CPU-s`.padStart(12),
    `${(narSize / MB / cpu).toFixed(0)} MB/CPU-s`.padStart(15),
    `${(narSize / MB / wall).toFixed(0)} MB/s`.padStart(10),
    `${(out / MB).toFixed(1)} MB out`.padStart(14),
  ];
  console.log(line.join(" "));
}

const nar = await dump(dir);
console.log(`NAR of ${dir}: ${(nar.length / MB).toFixed(1)} MB`);
// stored as the server stores it: chunks (fixed 64 KiB here) each one zstd-8 frame
const frames: Buffer[] = [];
for (let i = 0; i < nar.length; i += CHUNK) frames.push(await compressBuffer("zstd", 8, nar.subarray(i, i + CHUNK)));
const stored = () => Readable.from(frames);
/** the decoded NAR from the stored chunks, chunk by chunk (what the server does) */
const decoded = () =>
  Readable.from(
    (async function* () {
      for (const f of frames) yield await decompressBuffer("zstd", f);
    })(),
  );
const raw = () => Readable.from((function* () {
  for (let i = 0; i < nar.length; i += 1024 * 1024) yield nar.subarray(i, i + 1024 * 1024);
})());

for (let round = 1; round <= 2; round++) {
  console.log(`-- round ${round}`);
  await measure(".zst: stored chunks as they are", stored, () => null, nar.length);
  await measure(".nar: decode stored (anchor)", decoded, () => null, nar.length);
  for (const c of ["zstd", "br", "xz"] as const) {
    await measure(`decode + ${c} (as served)`, decoded, () => createNixFileEncoder(c), nar.length);
  }
  // the same command and level as createNixFileEncoder("bzip2"), with the child at hand to wait for
  await measure(`decode + bzip2 (as served)`, decoded, () => bzip2(NIX_FILE_ENCODE_LEVELS.bzip2), nar.length);
  await measure("decode + xz preset 0 (not used)", decoded, () => lzma.createCompressor({ preset: 0, threads: 1 }) as Transform, nar.length);
  await measure("anchor: raw + xz 6 (Nix's push)", raw, () => lzma.createCompressor({ preset: 6, threads: 1 }) as Transform, nar.length);
  await measure("anchor: raw + bzip2 9 (Nix's push)", raw, () => bzip2(9), nar.length);
  await measure("anchor: raw + brotli 5", raw, () => zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }), nar.length);
}

function bzip2(level: number): Duplex {
  const child = spawn("bzip2", ["-c", `-${level}`], { stdio: ["pipe", "pipe", "inherit"] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  children.set(duplex, child);
  return duplex;
}
