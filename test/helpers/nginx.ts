// Debian's nginx (nginx-light, installed when missing and we are root), run unprivileged on
// loopback from a throwaway prefix: the static-file anchor of the benchmarks, and a reverse proxy
// in front of atticd that limits request bodies as deployments do.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

export function nginxBinary(): string {
  for (const p of ["/usr/sbin/nginx", "/usr/bin/nginx"]) if (existsSync(p)) return p;
  if (process.getuid?.() !== 0) throw new Error("nginx is missing: install it with `sudo apt-get install -y nginx-light`");
  console.log("installing Debian nginx-light...");
  spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", "nginx-light"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status !== 0) throw new Error("apt-get install nginx-light failed");
  return "/usr/sbin/nginx";
}

export interface NginxProcess {
  port: number;
  /** the running master process (its workers are its children), undefined while stopped */
  readonly pid: number | undefined;
  /** stop (fast shutdown: open connections are cut) */
  stop(): Promise<void>;
  /** start again on the same port */
  start(): Promise<void>;
  /** stop and remove its folder */
  close(): Promise<void>;
}

/** nginx with `server` (the body of a `server {}` block, `listen` added) in its `http {}` block. */
export async function runNginx(server: string, options: { http?: string; port?: number; ready?: (port: number) => Promise<unknown> } = {}): Promise<NginxProcess> {
  const bin = nginxBinary();
  const dir = mkdtempSync(join(tmpdir(), "attic-nginx-"));
  mkdirSync(join(dir, "logs"));
  const port = options.port ?? (await freePort());
  const user = process.getuid?.() === 0 ? "user root;" : "";
  writeFileSync(
    join(dir, "nginx.conf"),
    `${user}
worker_processes auto;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  ${options.http ?? ""}
  server {
    listen 127.0.0.1:${port};
    ${server}
  }
}
`,
  );
  let child: ChildProcess | null = null;
  const ready = options.ready ?? ((p: number) => fetch(`http://127.0.0.1:${p}/`).then((r) => r.arrayBuffer()));
  const handle: NginxProcess = {
    port,
    get pid() {
      return child?.pid;
    },
    async start() {
      const c = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
      child = c;
      let err = "";
      c.stderr!.on("data", (b: Buffer) => (err += b.toString()));
      for (let i = 0; ; i++) {
        try {
          await ready(port);
          return;
        } catch {
          if (c.exitCode !== null || i > 200) throw new Error(`nginx did not start: ${err}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async stop() {
      const c = child;
      child = null;
      if (c === null || c.exitCode !== null) return;
      c.kill("SIGTERM");
      await new Promise((r) => c.once("exit", r));
    },
    async close() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await handle.start();
  return handle;
}

/**
 * A reverse proxy to `upstream` that refuses request bodies over `maxBody` (nginx syntax, e.g.
 * `8m`) with its HTML 413 page; null: no `client_max_body_size` line, nginx's default (1 MiB).
 */
export function runNginxProxy(upstream: string, maxBody: string | null, port?: number): Promise<NginxProcess> {
  return runNginx(
    `${maxBody === null ? "" : `client_max_body_size ${maxBody};`}
    location / {
      proxy_pass ${upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }`,
    port === undefined ? {} : { port },
  );
}
