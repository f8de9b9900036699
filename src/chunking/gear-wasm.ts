// FastCDC's cut loop (fastcdc.ts `findCutPoint`, the same cut points bit for bit) as a small
// WebAssembly function over a shared WebAssembly memory: the chunked pass's ring
// (workers/ring.ts) is such a memory, so the cutting worker runs it on the NAR's bytes where the
// main thread wrote them. Measured on the 587 MB JDK NAR on this kind of machine: 305-460 ms
// against 850-1,070 ms for the JavaScript loop (the gear hash is a chain of dependent adds; V8's
// bounds and type checks on each byte and table read are what the module does without).
//
// The module is encoded here rather than shipped as a binary: a dozen instructions, read next to
// the JavaScript loop they mirror. The gear table (gear-table.ts) is its data segment, at address
// 0 of the memory; the memory's first page is reserved for it (RESERVED), the ring's bytes follow.
import type { CutParams } from "./fastcdc.ts";
import { GEAR_TABLE } from "./gear-table.ts";

/** Bytes at the start of a cutting memory that hold the gear table (one page). */
export const RESERVED = 64 * 1024;

/** Length of the chunk at absolute address `start` within [start, end) of the memory; 0 = more data needed (as findCutPoint). */
export type WasmCut = (start: number, end: number, cut: CutParams, eof: boolean) => number;

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, "latin1")];

const I32 = 0x7f;
const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  ret: 0x0f,
  select: 0x1b,
  get: 0x20,
  set: 0x21,
  load: 0x28,
  load8u: 0x2d,
  const: 0x41,
  eqz: 0x45,
  ltU: 0x49,
  gtU: 0x4b,
  leU: 0x4d,
  geU: 0x4f,
  add: 0x6a,
  sub: 0x6b,
  and: 0x71,
  shl: 0x74,
  shrU: 0x76,
  void: 0x40,
};
// locals: the parameters, then size, strictEnd, eagerEnd, i, hash
const [START, END, MIN, CENTER, MAX, MASK_S, MASK_L, EOF, SIZE, STRICT_END, EAGER_END, I, HASH] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] as const;
const get = (l: number) => [op.get, l];
const set = (l: number) => [op.set, l];
const i32 = (n: number) => [op.const, ...sleb(n)];

/** while (i < end) { hash = (hash >>> 1) + table[mem[i]]; i++; if ((hash & mask) === 0) return i - start; } */
function gearLoop(end: number, mask: number): number[] {
  return [
    op.block, op.void, op.loop, op.void,
    ...get(I), ...get(end), op.geU, op.brIf, 1,
    ...get(HASH), ...i32(1), op.shrU,
    ...get(I), op.load8u, 0, 0, ...i32(2), op.shl, op.load, 2, 0,
    op.add, ...set(HASH),
    ...get(I), ...i32(1), op.add, ...set(I),
    ...get(HASH), ...get(mask), op.and, op.eqz, op.if, op.void, ...get(I), ...get(START), op.sub, op.ret, op.end,
    op.br, 0, op.end, op.end,
  ];
}

function moduleBytes(): Uint8Array {
  const body = [
    ...vec([[...uleb(5), I32]]),
    // size = end - start; if (size <= min) return eof ? size : 0; if (size > max) size = max
    ...get(END), ...get(START), op.sub, ...set(SIZE),
    ...get(SIZE), ...get(MIN), op.leU, op.if, op.void, ...get(SIZE), ...i32(0), ...get(EOF), op.select, op.ret, op.end,
    ...get(SIZE), ...get(MAX), op.gtU, op.if, op.void, ...get(MAX), ...set(SIZE), op.end,
    // strictEnd = start + min(center, size); eagerEnd = start + size; i = start + min; hash = 0
    ...get(START), ...get(CENTER), ...get(SIZE), ...get(CENTER), ...get(SIZE), op.ltU, op.select, op.add, ...set(STRICT_END),
    ...get(START), ...get(SIZE), op.add, ...set(EAGER_END),
    ...get(START), ...get(MIN), op.add, ...set(I),
    ...i32(0), ...set(HASH),
    ...gearLoop(STRICT_END, MASK_S),
    ...gearLoop(EAGER_END, MASK_L),
    // a non-final buffer may still hold a longer chunk, unless this one already reached maxSize
    ...get(EOF), op.eqz, ...get(SIZE), ...get(MAX), op.ltU, op.and, op.if, op.void, ...i32(0), op.ret, op.end,
    ...get(SIZE), op.end,
  ];
  const table = [...new Uint8Array(GEAR_TABLE.buffer, GEAR_TABLE.byteOffset, GEAR_TABLE.byteLength)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    // type: (i32 × 8) → i32
    ...section(1, vec([[0x60, ...vec(Array.from({ length: 8 }, () => [I32])), ...vec([[I32]])]])),
    // import env.mem: a shared memory of at least one page
    ...section(2, vec([[...name("env"), ...name("mem"), 0x02, 0x03, ...uleb(1), ...uleb(65536)]])),
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...name("cut"), 0x00, ...uleb(0)]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
    // the gear table at address 0 (little-endian i32s)
    ...section(11, vec([[0x00, ...i32(0), op.end, ...uleb(table.length), ...table]])),
  ]);
}

let compiled: WebAssembly.Module | null | undefined;

/** The cut function over `memory` (a shared memory whose first RESERVED bytes it may use), or null where WebAssembly cannot run it. */
export function wasmCutter(memory: WebAssembly.Memory): WasmCut | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(moduleBytes() as Uint8Array<ArrayBuffer>);
    } catch {
      compiled = null;
    }
  }
  if (!compiled) return null;
  const cut = new WebAssembly.Instance(compiled, { env: { mem: memory } }).exports.cut as (...args: number[]) => number;
  return (start, end, p, eof) => cut(start, end, p.minSize, p.center, p.maxSize, p.maskS, p.maskL, eof ? 1 : 0);
}

/** A shared memory for a ring of `bytes` (after the RESERVED page), or null where shared WebAssembly memory is missing. */
export function cuttingMemory(bytes: number): WebAssembly.Memory | null {
  const pages = Math.ceil((RESERVED + bytes) / 65536);
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  } catch {
    return null;
  }
}
