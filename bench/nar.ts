// NAR benchmark: serialize + SHA-256 a large directory with our serializer, and compare with
// `nix-store --dump DIR | sha256sum` on the same tree in the same run; then time the NAR
// validator alone on the NAR held in memory.
//
//   node bench/nar.ts [DIR]        (default /usr/lib/x86_64-linux-gnu)
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { narSerialize } from "../src/nix/nar/serialize.ts";
import { validateNar } from "../test/helpers/validate-nar.ts";

const dir = process.argv[2] ?? (existsSync("/usr/lib/x86_64-linux-gnu") ? "/usr/lib/x86_64-linux-gnu" : "/usr/share");
const MB = 1e6;
/** The validator pass keeps the whole NAR in memory; skip it above this size. */
const IN_MEMORY_LIMIT = 2 * 1024 ** 3;

function run(cmd: string, args: string[], onData?: (b: Buffer) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => (onData ? onData(b) : out.push(b)));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(Buffer.concat(out).toString()) : reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}`)),
    );
  });
}

function shell(script: string): Promise<string> {
  return run("bash", ["-o", "pipefail", "-c", script]);
}

async function ours(): Promise<{ hex: string; size: number; seconds: number }> {
  const start = performance.now();
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of narSerialize(dir) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { hex: hash.digest("hex"), size, seconds: (performance.now() - start) / 1000 };
}

async function nix(): Promise<{ hex: string; seconds: number }> {
  const start = performance.now();
  const out = await shell(`nix-store --dump '${dir.replaceAll("'", "'\\''")}' | sha256sum`);
  return { hex: out.split(" ")[0]!, seconds: (performance.now() - start) / 1000 };
}

console.log(`directory: ${dir}`);
// Warm the page cache so neither side pays for the first read from disk.
await shell(`nix-store --dump '${dir.replaceAll("'", "'\\''")}' > /dev/null`);

const a = await ours();
const b = await nix();
const dumpStart = performance.now();
await shell(`nix-store --dump '${dir.replaceAll("'", "'\\''")}' > /dev/null`);
const dumpSeconds = (performance.now() - dumpStart) / 1000;
const rate = (bytes: number, s: number): string => `${(bytes / MB / s).toFixed(1)} MB/s`;
console.log(`NAR size: ${(a.size / MB).toFixed(1)} MB`);
console.log(`ours (narSerialize + sha256):       ${a.seconds.toFixed(2)} s, ${rate(a.size, a.seconds)}`);
console.log(`nix-store --dump | sha256sum:       ${b.seconds.toFixed(2)} s, ${rate(a.size, b.seconds)}`);
console.log(`ratio ours/nix (throughput):        ${(b.seconds / a.seconds).toFixed(2)}`);
console.log(`(nix-store --dump > /dev/null alone: ${dumpSeconds.toFixed(2)} s, ${rate(a.size, dumpSeconds)})`);
if (a.hex !== b.hex) {
  console.error(`HASH MISMATCH: ours ${a.hex}, nix ${b.hex}`);
  process.exit(1);
}
console.log(`hashes equal: sha256 ${a.hex}`);

if (a.size <= IN_MEMORY_LIMIT) {
  const chunks: Buffer[] = [];
  for await (const chunk of narSerialize(dir) as AsyncIterable<Buffer>) chunks.push(chunk);
  const start = performance.now();
  const r = await validateNar(chunks);
  const seconds = (performance.now() - start) / 1000;
  if (r.narHash.toBase16() !== a.hex) throw new Error("validator hash differs");
  console.log(`NarValidator (in memory, parse + sha256): ${seconds.toFixed(2)} s, ${rate(r.narSize, seconds)}`);
}
