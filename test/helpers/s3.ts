// An S3-compatible server on loopback for tests: s3rver (the only workable offline option here,
// see ../shared/notes/dependencies.md). It runs in a child process with --openssl-legacy-provider,
// without which its paginated listings fail.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

export interface S3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Create a bucket (idempotent). */
  createBucket(name: string): Promise<void>;
  /** the s3rver process (benchmarks count its CPU) */
  pid?: number;
  stop(): Promise<void>;
}

export async function startS3(): Promise<S3Server> {
  const dir = mkdtempSync(join(tmpdir(), "attic-s3-"));
  const port = await freePort();
  const script = `
    const S3rver = require('s3rver');
    const s = new S3rver({ port: ${port}, address: '127.0.0.1', silent: true, directory: ${JSON.stringify(dir)}, resetOnClose: true });
    s.run().then(() => process.send('ready'), (e) => { console.error(e); process.exit(1); });
    process.on('SIGTERM', () => s.close().finally(() => process.exit(0)));
  `;
  const child: ChildProcess = spawn(process.execPath, ["--openssl-legacy-provider", "-e", script], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    cwd: process.cwd(),
  });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const server: S3Server = {
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    endpoint,
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    async createBucket(name) {
      const res = await fetch(`${endpoint}/${name}`, { method: "PUT" });
      if (!res.ok && res.status !== 409) throw new Error(`create bucket ${name}: ${res.status} ${await res.text()}`);
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
