// Decoding served NARs with the system tools (zstd, xz), which read every frame of a multi-frame
// stream; Node's own zstd decoder stops after the first frame.
import { spawn } from "node:child_process";
import { brotliDecompressSync } from "node:zlib";

export async function decompressWithCli(compression: string, data: Buffer): Promise<Buffer> {
  if (compression === "none") return data;
  if (compression === "br") return brotliDecompressSync(data);
  const cmd = compression === "zstd" ? ["zstd", "-dc"] : compression === "xz" ? ["xz", "-dc"] : null;
  if (!cmd) throw new Error(`no CLI for ${compression}`);
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  child.stdin.end(data);
  const code = await new Promise<number>((r) => child.on("close", (c) => r(c ?? 1)));
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed: ${Buffer.concat(err).toString()}`);
  return Buffer.concat(out);
}
