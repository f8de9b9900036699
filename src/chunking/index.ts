// The chunking room: content-defined chunking identical to upstream Attic's.
export { CHUNKING_LIMITS, cutLengths, deriveCutParams, findCutPoint, validateChunkingParams } from "./fastcdc.ts";
export type { ChunkingParams, CutParams } from "./fastcdc.ts";
export { chunkStream } from "./stream.ts";
export { ChunkWindow, type ChunkSink } from "./window.ts";
