// Decoding served NARs with the system tools (zstd, xz, brotli): reference decoders that share no
// code with ours, and zstd and xz read every frame of a multi-frame stream (Node's own zstd
// decoder stops after the first frame).
import { spawn } from "node:child_process";

const DECODERS: Record<string, string[]> = {
  zstd: ["zstd", "-dc"],
  xz: ["xz", "-dc"],
  br: ["brotli", "-dc"],
};

export async function decompressWithCli(compression: string, data: Buffer): Promise<Buffer> {
  if (compression === "none") return data;
  const cmd = DECODERS[compression];
  if (!cmd) throw new Error(`no CLI for ${compression}`);
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  child.stdin.on("error", () => undefined); // a decoder that quits early: its exit code says why
  child.stdin.end(data);
  const code = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed: ${Buffer.concat(err).toString()}`);
  return Buffer.concat(out);
}
