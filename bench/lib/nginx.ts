// nginx serving a folder on loopback: the anchor for pulls and request rates (a `file://` binary
// cache behind the simplest static web server). Installs Debian's nginx-light when missing.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/helpers/ports.ts";
import { nginxBinary } from "../../test/helpers/nginx.ts";

export interface Nginx {
  url: string;
  /** the master process (its workers are its children) */
  pid: number;
  stop(): Promise<void>;
}

/** Serve `root` (a `file://` binary cache folder) at `/<prefix>/`, as a cache URL would be. */
export async function startNginx(root: string, prefix: string): Promise<Nginx> {
  const bin = nginxBinary();
  const dir = mkdtempSync(join(tmpdir(), "attic-bench-nginx-"));
  mkdirSync(join(dir, "logs"));
  const port = await freePort();
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
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; application/x-nix-nar nar; }
  server {
    listen 127.0.0.1:${port};
    location /${prefix}/ { alias ${root}/; }
  }
}
`,
  );
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const url = `http://127.0.0.1:${port}/${prefix}`;
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}/nix-cache-info`);
      break;
    } catch {
      if (child.exitCode !== null || i > 100) throw new Error(`nginx did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
