// nginx serving a folder on loopback: the anchor for pulls and request rates (a `file://` binary
// cache behind the simplest static web server). Installs Debian's nginx-light when missing.
import { runNginx } from "../../test/helpers/nginx.ts";

export interface Nginx {
  url: string;
  /** the master process (its workers are its children) */
  pid: number;
  stop(): Promise<void>;
}

/** Serve `root` (a `file://` binary cache folder) at `/<prefix>/`, as a cache URL would be. */
export async function startNginx(root: string, prefix: string): Promise<Nginx> {
  const nginx = await runNginx(`location /${prefix}/ { alias ${root}/; }`, {
    http: `sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; application/x-nix-nar nar; }`,
    ready: (port) => fetch(`http://127.0.0.1:${port}/${prefix}/nix-cache-info`).then((r) => r.arrayBuffer()),
  });
  return { url: `http://127.0.0.1:${nginx.port}/${prefix}`, pid: nginx.pid!, stop: () => nginx.close() };
}
