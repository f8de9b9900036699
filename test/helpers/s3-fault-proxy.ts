// A pass-through HTTP proxy in front of the test S3 server that records every request and can
// inject faults (an S3 error answer, or a delay that makes the server look slow). Tests use it to
// see what a storage driver sent (batched deletes, aborted multipart uploads) and to exercise
// retries, failures and bounded concurrency.
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface SeenRequest {
  method: string;
  url: string;
  /** the Range header, when sent */
  range?: string;
}

/**
 * An S3 error answer, a delay, `hold` (forwarded once the promise settles: a write kept in flight
 * for as long as the test needs), or `cutAfterBytes`: forward the answer's headers and that many
 * bytes of its body, then drop the connection (a response that breaks off mid-body); or `reset`:
 * drop the connection without forwarding the request or answering.
 */
export type Fault = { status: number; code: string } | { delayMs: number } | { hold: Promise<void> } | { cutAfterBytes: number } | { reset: true } | undefined;

export interface FaultProxy {
  endpoint: string;
  /** every request seen, oldest first */
  readonly seen: SeenRequest[];
  /** decide per request (called once per HTTP attempt); undefined forwards it unchanged */
  rule: ((req: SeenRequest) => Fault) | undefined;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const server = createServer(async (req, res) => {
    const seen: SeenRequest = { method: req.method ?? "GET", url: req.url ?? "/", ...(req.headers.range ? { range: req.headers.range } : {}) };
    proxy.seen.push(seen);
    const fault = proxy.rule?.(seen);
    if (fault && "status" in fault) {
      req.resume();
      req.on("end", () => {
        res.writeHead(fault.status, { "content-type": "application/xml" });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code><Message>injected by the test proxy</Message></Error>`);
      });
      return;
    }
    if (fault && "reset" in fault) {
      req.socket.destroy();
      return;
    }
    if (fault && "delayMs" in fault) await sleep(fault.delayMs);
    if (fault && "hold" in fault) await fault.hold;
    const cut = fault && "cutAfterBytes" in fault ? fault.cutAfterBytes : null;
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (cut === null) return void up.pipe(res);
      let sent = 0;
      up.on("data", (piece: Buffer) => {
        if (sent >= cut) return;
        const part = piece.subarray(0, cut - sent);
        sent += part.length;
        res.write(part, () => {
          if (sent >= cut) {
            up.destroy();
            res.socket?.destroy();
          }
        });
      });
    });
    out.on("error", (err) => res.destroy(err));
    req.on("error", (err) => out.destroy(err));
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const proxy: FaultProxy = {
    endpoint: `http://127.0.0.1:${port}`,
    seen: [],
    rule: undefined,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return proxy;
}
