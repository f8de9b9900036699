// The encoders used to serve a URL `nix copy` uploaded (served-files.ts): whatever the format, the
// output decodes to the input with our decoder and the reference tools (xz, zstd and bzip2
// commands, lzma-native, Python's lzma), including the stored .xz (LZMA2 uncompressed chunks) at and around its 64 KiB
// chunk size, an empty input and a single byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import lzma from "lzma-native";
import { createNixFileEncoder } from "../../../src/compression/nix-file-encode.ts";
import { XzStoredEncoder } from "../../../src/compression/xz-stored.ts";
import { decodeNixFile } from "../../../src/compression/nix-file.ts";

async function encode(pieces: Buffer[], encoder: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), encoder, new Writable({ write: (b: Buffer, _e, cb) => (out.push(b), cb()) }));
  return Buffer.concat(out);
}

/** Decoded by a reference command reading stdin. */
function decodeWith(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: "buffer", maxBuffer: 1 << 28 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stdin!.end(input);
  });
}

const CASES: Record<string, Buffer[]> = {
  empty: [],
  "one byte": [Buffer.from("x")],
  "exactly one chunk, then three": [randomBytes(65536), Buffer.alloc(0), randomBytes(3 * 65536)],
  "uneven pieces": [randomBytes(70_000), randomBytes(200_001), Buffer.alloc(300_000, 7), randomBytes(1)],
};

for (const [name, pieces] of Object.entries(CASES)) {
  test(`stored .xz, ${name}: xz -t passes and xz, lzma-native and Python's lzma decode it`, async () => {
    const input = Buffer.concat(pieces);
    const file = await encode(pieces, new XzStoredEncoder());
    assert.ok(file.length >= input.length && file.length <= input.length + 64 + 3 * Math.ceil(input.length / 65536));
    await decodeWith("xz", ["-t"], file);
    assert.ok((await decodeWith("xz", ["-dc"], file)).equals(input));
    assert.ok((await decodeWith("python3", ["-c", "import lzma,sys; sys.stdout.buffer.write(lzma.decompress(sys.stdin.buffer.read()))"], file)).equals(input));
    assert.ok((await encode([file], lzma.createDecompressor())).equals(input));
  });
}

const CLI: Record<string, [string, string[]]> = {
  xz: ["xz", ["-dc"]],
  zstd: ["zstd", ["-dc"]],
  bzip2: ["bzip2", ["-dc"]],
};

for (const format of ["none", "xz", "zstd", "bzip2", "br"] as const) {
  test(`createNixFileEncoder(${format}) decodes back, with our decoder and the reference command`, async () => {
    const pieces = [randomBytes(100_000), Buffer.alloc(500_000, 1), randomBytes(3)];
    const input = Buffer.concat(pieces);
    const file = await encode(pieces, createNixFileEncoder(format));
    const ours: Buffer[] = [];
    for await (const piece of decodeNixFile(format, Readable.from([file]))) ours.push(piece);
    assert.ok(Buffer.concat(ours).equals(input));
    const cli = CLI[format];
    if (cli) assert.ok((await decodeWith(cli[0], cli[1], file)).equals(input));
  });
}
