// Test doubles for the client: an in-memory store and a tiny HTTP server that records requests.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { PathInfo } from "../../../src/client/nix-path-info.ts";
import type { LocalStore } from "../../../src/client/nix-store.ts";

export const STORE = "/nix/store";

export function fakePath(hashChar: string, name: string, extra: Partial<PathInfo> = {}): PathInfo {
  return {
    path: `${STORE}/${hashChar.repeat(32)}-${name}`,
    narHash: `sha256:${"ab".repeat(32)}`,
    narSize: 100,
    references: [],
    sigs: [],
    ca: null,
    deriver: null,
    ...extra,
  };
}

/** A store whose closure follows `references`, and whose NARs are `narSize` bytes of "x". */
export class FakeStore implements LocalStore {
  readonly storeDir = STORE;
  readonly infos = new Map<string, PathInfo>();
  calls = { closure: 0, pathInfos: 0, closurePathInfos: 0, nar: 0 };

  constructor(infos: PathInfo[]) {
    for (const i of infos) this.infos.set(i.path, i);
  }

  async closure(paths: string[]): Promise<string[]> {
    this.calls.closure++;
    const seen = new Set<string>();
    const visit = (p: string): void => {
      if (seen.has(p)) return;
      const info = this.infos.get(p);
      if (info === undefined) throw new Error(`path '${p}' is not valid`);
      seen.add(p);
      info.references.forEach(visit);
    };
    paths.forEach(visit);
    return [...seen];
  }

  async pathInfos(paths: string[]): Promise<PathInfo[]> {
    this.calls.pathInfos++;
    return paths.map((p) => {
      const info = this.infos.get(p);
      if (info === undefined) throw new Error(`path '${p}' is not valid`);
      return info;
    });
  }

  async closurePathInfos(paths: string[]): Promise<PathInfo[]> {
    this.calls.closurePathInfos++;
    const closure = await this.closure(paths);
    this.calls.closure--;
    return this.pathInfos(closure).finally(() => this.calls.pathInfos--);
  }

  async validPaths(paths: string[]): Promise<string[]> {
    return paths.filter((p) => this.infos.has(p));
  }

  async *nar(path: string): AsyncIterable<Uint8Array> {
    this.calls.nar++;
    const size = this.infos.get(path)?.narSize ?? 0;
    // small pieces (parts are cut across them), larger for NARs of MiBs (the 413 tests)
    const piece = size > 2 ** 20 ? 65536 : 64;
    for (let sent = 0; sent < size; sent += piece) yield Buffer.alloc(Math.min(piece, size - sent), "x");
  }
}

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface FakeServer {
  url: string;
  requests: Recorded[];
  close(): Promise<void>;
}

export async function startFakeServer(handle: (req: Recorded, res: ServerResponse) => unknown): Promise<FakeServer> {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      const rec: Recorded = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(parts) };
      requests.push(rec);
      void Promise.resolve(handle(rec, res)).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
