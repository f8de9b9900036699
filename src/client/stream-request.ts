// A request whose body is a stream (the NAR of an upload), through node:http/node:https and
// `pipeline`: the body is pulled only as fast as the socket takes it, so a slow server pauses
// `nix-store --dump` instead of the client buffering the NAR. (Node's fetch does not hold a
// streamed body back: a 2 GiB NAR took 2 GiB of client memory.) The JSON calls stay on fetch.
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { pipeline } from "node:stream/promises";

/** As undici (fetch) waits for a connection. */
const CONNECT_TIMEOUT_MS = 10_000;
/** As undici's header and body timeouts: a socket silent this long is given up. */
const IDLE_TIMEOUT_MS = 300_000;

const agents = {
  // Idle sockets are closed after 5 s, as Node's global agent does.
  "http:": new HttpAgent({ keepAlive: true, timeout: 5_000 }),
  "https:": new HttpsAgent({ keepAlive: true, timeout: 5_000 }),
};

export interface StreamRequest {
  method: string;
  headers: OutgoingHttpHeaders;
  body: AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
}

export interface StreamReply {
  status: number;
  /** the reply's body; "" when it could not be read whole */
  text: string;
}

/** The body's own failure, told apart from the connection's. */
export class BodyError extends Error {
  constructor(cause: unknown) {
    super("the request body failed", { cause });
    this.name = "BodyError";
  }
}

/**
 * Sends the request and resolves with the reply once it has been read, even when the server
 * answered before taking the whole body (the rest is not sent). Rejects with the signal's reason
 * on abort, a `BodyError` when `body` throws, or the connection's error.
 */
export function streamRequest(url: URL, options: StreamRequest): Promise<StreamReply> {
  const { signal } = options;
  if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
  const agent = url.protocol === "https:" ? agents["https:"] : url.protocol === "http:" ? agents["http:"] : null;
  if (agent === null) return Promise.reject(new TypeError(`unsupported URL scheme ${url.protocol}`));
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;

  return new Promise<StreamReply>((resolve, reject) => {
    let settled = false;
    let responded = false;
    let bodyFailure: unknown = null;
    let connectTimer: NodeJS.Timeout | undefined;
    const req: ClientRequest = send(url, { method: options.method, headers: options.headers, agent });
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      clearTimeout(connectTimer);
      outcome();
    };
    const fail = (err: unknown): void => {
      finish(() => reject(bodyFailure !== null ? new BodyError(bodyFailure) : err));
      req.destroy();
    };
    const onAbort = (): void => {
      finish(() => reject(signal!.reason as Error));
      req.destroy();
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    req.once("socket", (socket) => {
      socket.setNoDelay(true);
      if (settled || !socket.connecting) return;
      connectTimer = setTimeout(() => req.destroy(new Error(`connect timed out after ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      socket.once("connect", () => clearTimeout(connectTimer));
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
    // Once an answer has begun, the connection's end is the answer's business (below).
    req.on("error", (err) => {
      if (!responded) fail(err);
    });
    req.once("response", (res: IncomingMessage) => {
      responded = true;
      clearTimeout(connectTimer);
      res.setEncoding("utf8");
      let text = "";
      res.on("data", (d: string) => (text += d));
      res.on("error", () => (text = ""));
      res.once("close", () => {
        finish(() => resolve({ status: res.statusCode ?? 0, text: res.complete ? text : "" }));
        // An answer before the end of the body: stop sending it (this socket is not reused).
        if (!req.writableFinished) req.destroy();
      });
    });

    pipeline(watchBody(options.body, (err) => (bodyFailure = err)), req).catch((err: unknown) => {
      // After an early answer, the body is cut short on purpose; that is no failure.
      if (!settled) fail(err);
    });
  });
}

async function* watchBody(body: AsyncIterable<Uint8Array>, onError: (err: unknown) => void): AsyncIterable<Uint8Array> {
  try {
    yield* body;
  } catch (err) {
    onError(err);
    throw err;
  }
}
