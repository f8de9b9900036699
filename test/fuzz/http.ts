// Raw HTTP/1.1 over a loopback socket, so the fuzzer can send what fetch refuses to: lying
// Content-Length, raw bytes in paths and headers, bodies cut short. Every request says
// `Connection: close`, so the response is whatever arrives until the server closes.
import { connect } from "node:net";

export interface RawRequest {
  method: string;
  /** sent as is, not encoded */
  path: string;
  headers: [string, string][];
  body?: Buffer;
  /** end our side after the body even though Content-Length promised more */
  shortBody?: boolean;
}

export type RawOutcome =
  | { kind: "response"; status: number; headers: Map<string, string>; body: Buffer; ms: number }
  /** the server closed without answering */
  | { kind: "closed"; ms: number; error?: string }
  | { kind: "timeout"; ms: number };

export function requestBytes(req: RawRequest): Buffer {
  const head = [`${req.method} ${req.path} HTTP/1.1`, ...req.headers.map(([k, v]) => `${k}: ${v}`), "", ""].join("\r\n");
  return Buffer.concat([Buffer.from(head, "latin1"), req.body ?? Buffer.alloc(0)]);
}

export function sendRaw(port: number, req: RawRequest, timeoutMs: number): Promise<RawOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const parts: Buffer[] = [];
    let settled = false;
    const done = (o: RawOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ kind: "timeout", ms: performance.now() - started }), timeoutMs);
    socket.on("data", (b: Buffer) => parts.push(b));
    socket.on("error", (e) => {
      // a reset after a complete response is still that response
      const parsed = parseResponse(Buffer.concat(parts), performance.now() - started);
      done(parsed ?? { kind: "closed", ms: performance.now() - started, error: e.message });
    });
    socket.on("end", () => {
      const ms = performance.now() - started;
      done(parseResponse(Buffer.concat(parts), ms) ?? { kind: "closed", ms });
    });
    socket.on("connect", () => {
      socket.write(requestBytes(req));
      if (req.shortBody) socket.end();
    });
  });
}

function parseResponse(raw: Buffer, ms: number): RawOutcome | null {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const lines = raw.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (!m) return null;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") body = dechunk(body);
  else if (headers.has("content-length")) body = body.subarray(0, Number(headers.get("content-length")));
  return { kind: "response", status: Number(m[1]), headers, body, ms };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = b.indexOf("\r\n", pos);
    if (eol < 0) break;
    const n = parseInt(b.subarray(pos, eol).toString("latin1"), 16);
    if (!(n > 0)) break;
    out.push(b.subarray(eol + 2, eol + 2 + n));
    pos = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}
