// Messages between an upload (chunker.ts) and its chunker worker (chunker-worker.ts).
import type { ChunkingParams } from "../../chunking/fastcdc.ts";

export type ToChunker =
  | { type: "open"; id: number; params: ChunkingParams }
  | { type: "data"; id: number; piece: Uint8Array }
  | { type: "end"; id: number }
  | { type: "close"; id: number };

/** one chunk: its bytes (moved, not copied) and the hex SHA-256 of them */
export interface WorkerChunk {
  data: Uint8Array;
  hash: string;
}

export type FromChunker =
  | { type: "chunks"; id: number; chunks: WorkerChunk[] }
  | { type: "done"; id: number; narHash: string; narSize: number }
  /** `narOffset` is set when the NAR itself is invalid (a NarError in the worker) */
  | { type: "error"; id: number; message: string; narOffset?: number };
