// The per-byte work of a chunked upload, on a worker thread (chunker.ts starts it): NAR
// validation and the NAR's SHA-256, content-defined chunking and each chunk's SHA-256. Several
// uploads can share a worker; each is a session keyed by its id. Every `data` message is answered
// with one `chunks` message (possibly empty), which is also the main thread's flow control.
import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { ChunkWindow } from "../../chunking/window.ts";
import { NarError, NarParser } from "../../nix/nar/parser.ts";
import type { FromChunker, ToChunker, WorkerChunk } from "./chunker-protocol.ts";

interface Session {
  window: ChunkWindow;
  parser: NarParser;
  narHash: Hash;
  narSize: number;
}

const port = parentPort!;
const sessions = new Map<number, Session>();

function send(msg: FromChunker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function fail(id: number, err: unknown): void {
  sessions.delete(id);
  if (err instanceof NarError) send({ type: "error", id, message: err.message, narOffset: err.offset });
  else send({ type: "error", id, message: String((err as Error)?.message ?? err) });
}

/** Cuts with `run`, answering with the chunks found: each copied into its own memory, which moves. */
function emitChunks(id: number, run: (emit: (view: Uint8Array) => void) => void): void {
  const chunks: WorkerChunk[] = [];
  const transfer: ArrayBuffer[] = [];
  run((view) => {
    // its own memory (so it can move), not zero-filled first: every byte is written by the copy
    const data = Buffer.allocUnsafeSlow(view.length);
    data.set(view);
    chunks.push({ data, hash: createHash("sha256").update(data).digest("hex") });
    transfer.push(data.buffer);
  });
  send({ type: "chunks", id, chunks }, transfer);
}

port.on("message", (msg: ToChunker) => {
  if (msg.type === "open") {
    sessions.set(msg.id, { window: new ChunkWindow(msg.params), parser: new NarParser(), narHash: createHash("sha256"), narSize: 0 });
    return;
  }
  if (msg.type === "close") {
    sessions.delete(msg.id);
    return;
  }
  const s = sessions.get(msg.id);
  if (!s) return;
  try {
    if (msg.type === "data") {
      const piece = Buffer.from(msg.piece.buffer, msg.piece.byteOffset, msg.piece.byteLength);
      // validated before it is chunked: nothing past a structural error is ever stored
      s.parser.update(piece);
      s.narHash.update(piece);
      s.narSize += piece.length;
      emitChunks(msg.id, (emit) => s.window.push(piece, emit));
    } else {
      s.parser.end();
      emitChunks(msg.id, (emit) => s.window.end(emit));
      sessions.delete(msg.id);
      send({ type: "done", id: msg.id, narHash: s.narHash.digest("hex"), narSize: s.narSize });
    }
  } catch (err) {
    fail(msg.id, err);
  }
});
