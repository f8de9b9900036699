// The part of lzma-native (N-API liblzma binding, no types of its own) this room uses.
declare module "lzma-native" {
  import type { Duplex } from "node:stream";
  interface StreamOptions {
    preset?: number;
    check?: number;
    threads?: number;
  }
  const lzma: {
    CHECK_CRC64: number;
    createCompressor(options?: StreamOptions): Duplex;
    createDecompressor(options?: StreamOptions): Duplex;
  };
  export default lzma;
}
