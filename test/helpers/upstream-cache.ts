// A real upstream binary cache for pull-through tests and benchmarks: folders written by
// `nix copy --to 'file://…?compression=…&secret-key=…'` (signed with keys from
// `nix key generate-secret`), served by nginx on loopback with an access log, so a test can
// count the requests that reached the upstream.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runNginx, type NginxProcess } from "./nginx.ts";
import { nix, NIX_COMMAND } from "./nix.ts";
import { parseNarInfo, type NarInfo } from "../../src/nix/narinfo.ts";

export interface SigningKey {
  name: string;
  secretFile: string;
  publicKey: string;
}

export async function generateKey(dir: string, name: string): Promise<SigningKey> {
  const secret = await nix("nix", [...NIX_COMMAND, "key", "generate-secret", "--key-name", name]);
  const secretFile = join(dir, `${name}.sk`);
  writeFileSync(secretFile, secret);
  const publicKey = await nix("nix", [...NIX_COMMAND, "key", "convert-secret-to-public"], { input: Buffer.from(secret) });
  return { name, secretFile, publicKey };
}

export interface UpstreamServer {
  /** the folder nginx serves: one binary cache per subfolder */
  root: string;
  nginx: NginxProcess;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** write `paths` (and their closures) into the binary cache `<root>/<name>`, signed with `key` */
  copy(name: string, paths: string[], compression: "xz" | "zstd" | "none", key: SigningKey): Promise<void>;
  narinfo(name: string, storePath: string): NarInfo;
  /** the file of the NAR of `storePath` in `<root>/<name>` */
  narFile(name: string, storePath: string): string;
  /** requests in nginx's access log whose URL contains `needle` */
  requests(needle: string): number;
  close(): Promise<void>;
}

/** nginx on loopback serving a fresh folder; `extra` adds locations (e.g. a redirect; `ROOT` stands for the folder). */
export async function startUpstream(extra = ""): Promise<UpstreamServer> {
  const root = mkdtempSync(join(tmpdir(), "attic-upstream-"));
  const logs = join(root, ".logs");
  mkdirSync(logs);
  const accessLog = join(logs, "access.log");
  const nginx = await runNginx(
    `access_log ${accessLog};
    ${extra.replaceAll("ROOT", root)}
    location / { root ${root}; }`,
  );
  const hashOf = (storePath: string) => storePath.slice(storePath.lastIndexOf("/") + 1, storePath.lastIndexOf("/") + 33);
  const up: UpstreamServer = {
    root,
    nginx,
    base: `http://127.0.0.1:${nginx.port}`,
    async copy(name, paths, compression, key) {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      await nix("nix", [...NIX_COMMAND, "copy", "--option", "build-users-group", "", "--to", `file://${dir}?compression=${compression}&secret-key=${key.secretFile}`, ...paths]);
    },
    narinfo(name, storePath) {
      return parseNarInfo(readFileSync(join(root, name, `${hashOf(storePath)}.narinfo`), "utf8"));
    },
    narFile(name, storePath) {
      return join(root, name, up.narinfo(name, storePath).url);
    },
    requests(needle) {
      if (!existsSync(accessLog)) return 0;
      return readFileSync(accessLog, "utf8").split("\n").filter((l) => l.includes(needle)).length;
    },
    async close() {
      await nginx.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return up;
}
