// Incremental NAR parser: feed it chunks of any size; it checks the structure as bytes arrive
// and throws a NarError naming the problem and its byte offset. Framing is copied into a small
// scratch buffer; file contents are only counted (or handed to a listener as slices), so memory
// stays bounded whatever the NAR holds. It accepts exactly what `nix-store --dump` can produce.
import { NAR_MAGIC, NAR_MAX_DEPTH, NAR_MAX_NAME, NAR_MAX_TARGET, padding } from "./format.ts";

export class NarError extends Error {
  /** Byte offset in the NAR where the problem was found. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`invalid NAR: ${message} (at byte ${offset})`);
    this.name = "NarError";
    this.offset = offset;
  }
}

/** What the parser saw; `path` is relative to the root, components joined by "/" (empty for the root). */
export type NarEvent =
  | { type: "directory"; path: Buffer }
  | { type: "regular"; path: Buffer; executable: boolean; size: number }
  /** `data` is a view into the chunk given to update(): copy it to keep it. */
  | { type: "contents"; path: Buffer; data: Buffer }
  | { type: "symlink"; path: Buffer; target: Buffer };

// Grammar states: what the next string must be.
const G_MAGIC = 0;
const G_OPEN = 1;
const G_TYPE = 2;
const G_TYPE_VALUE = 3;
const G_REGULAR_NEXT = 4; // "executable" or "contents"
const G_EXEC_EMPTY = 5;
const G_CONTENTS = 6;
const G_CLOSE_NODE = 7;
const G_TARGET_KW = 8;
const G_TARGET = 9;
const G_DIR_NEXT = 10; // "entry" or ")"
const G_ENTRY_OPEN = 11;
const G_NAME_KW = 12;
const G_NAME = 13;
const G_NODE_KW = 14;
const G_ENTRY_CLOSE = 15;
const G_DONE = 16;

/** The literal strings each keyword state accepts. */
const LITERALS: (readonly string[])[] = [];
LITERALS[G_MAGIC] = [NAR_MAGIC];
LITERALS[G_OPEN] = ["("];
LITERALS[G_TYPE] = ["type"];
LITERALS[G_TYPE_VALUE] = ["regular", "symlink", "directory"];
LITERALS[G_REGULAR_NEXT] = ["executable", "contents"];
LITERALS[G_EXEC_EMPTY] = [""];
LITERALS[G_CONTENTS] = ["contents"];
LITERALS[G_CLOSE_NODE] = [")"];
LITERALS[G_TARGET_KW] = ["target"];
LITERALS[G_DIR_NEXT] = ["entry", ")"];
LITERALS[G_ENTRY_OPEN] = ["("];
LITERALS[G_NAME_KW] = ["name"];
LITERALS[G_NODE_KW] = ["node"];
LITERALS[G_ENTRY_CLOSE] = [")"];
const KEYWORD_MAX = 64;
const LITERAL_BYTES = LITERALS.map((alts) => alts.map((a) => Buffer.from(a)));

// Byte-level phases.
const P_LEN = 0; // reading a string's 8-byte length
const P_BODY = 1; // reading a string's bytes and padding into scratch
const P_CSIZE = 2; // reading the 8-byte contents size
const P_CONTENT = 3; // passing file contents
const P_CPAD = 4; // reading the contents' padding

const SLASH = Buffer.from("/");
const EMPTY = Buffer.alloc(0);

interface DirFrame {
  path: Buffer;
  prevName: Buffer | undefined;
}

function show(b: Buffer): string {
  const s = JSON.stringify(b.subarray(0, 40).toString("latin1"));
  return b.length > 40 ? `${s}…` : s;
}

function expected(state: number): string {
  if (state === G_NAME) return "an entry name";
  if (state === G_TARGET) return "a symlink target";
  return LITERALS[state]!.map((l) => JSON.stringify(l)).join(" or ");
}

export class NarParser {
  private readonly onEvent: ((e: NarEvent) => void) | undefined;
  private offset = 0;
  private phase = P_LEN;
  private state = G_MAGIC;
  private readonly scratch = Buffer.alloc(NAR_MAX_TARGET + 8);
  private need = 8;
  private have = 0;
  private strLen = 0;
  private tokenStart = 0;
  private contentSize = 0;
  private contentLeft = 0;
  private executable = false;
  private readonly stack: DirFrame[] = [];
  /** Path of the node being parsed (only tracked when there is a listener). */
  private nodePath: Buffer = EMPTY;
  private error: NarError | undefined;

  constructor(onEvent?: (e: NarEvent) => void) {
    this.onEvent = onEvent;
  }

  /** Bytes consumed so far. */
  get bytesSeen(): number {
    return this.offset;
  }

  get complete(): boolean {
    return this.state === G_DONE;
  }

  update(chunk: Buffer): void {
    if (this.error !== undefined) throw this.error;
    try {
      this.consume(chunk);
    } catch (e) {
      if (e instanceof NarError) this.error = e; // the state is unusable after a failure
      throw e;
    }
  }

  private consume(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.state === G_DONE) throw new NarError("trailing data after the root object", this.offset);
      if (this.phase === P_CONTENT) {
        const n = Math.min(this.contentLeft, end - pos);
        if (this.onEvent !== undefined) this.onEvent({ type: "contents", path: this.nodePath, data: chunk.subarray(pos, pos + n) });
        pos += n;
        this.offset += n;
        this.contentLeft -= n;
        if (this.contentLeft === 0) this.afterContents();
        continue;
      }
      const n = Math.min(this.need - this.have, end - pos);
      chunk.copy(this.scratch, this.have, pos, pos + n);
      this.have += n;
      pos += n;
      this.offset += n;
      if (this.have === this.need) this.filled();
    }
  }

  /** Call at end of input: throws when the NAR is incomplete. */
  end(): void {
    if (this.error !== undefined) throw this.error;
    if (this.state === G_DONE) return;
    let what: string;
    if (this.phase === P_CSIZE) what = "the size of file contents";
    else if (this.phase === P_CONTENT || this.phase === P_CPAD) what = "file contents";
    else what = expected(this.state);
    throw new NarError(`truncated: input ended while reading ${what}`, this.offset);
  }

  private expect(n: number, phase: number): void {
    this.phase = phase;
    this.need = n;
    this.have = 0;
    if (n === 0) this.filled();
  }

  private filled(): void {
    switch (this.phase) {
      case P_LEN:
        return this.gotLength();
      case P_BODY:
        return this.gotString();
      case P_CSIZE:
        return this.gotContentSize();
      case P_CPAD:
        this.checkPadding(0, this.need);
        this.state = G_CLOSE_NODE;
        return this.expect(8, P_LEN);
    }
  }

  private readU64(what: string, max: number): number {
    const lo = this.scratch.readUInt32LE(0);
    const hi = this.scratch.readUInt32LE(4);
    const n = hi * 0x1_0000_0000 + lo;
    if (hi >= 0x20_0000 || n > max) {
      throw new NarError(`${what} of ${hi >= 0x20_0000 ? "more than 2^53" : n} bytes is too large`, this.offset - 8);
    }
    return n;
  }

  private gotLength(): void {
    this.tokenStart = this.offset - 8;
    const state = this.state;
    let max: number;
    if (state === G_NAME) max = NAR_MAX_NAME;
    else if (state === G_TARGET) max = NAR_MAX_TARGET;
    else max = KEYWORD_MAX; // small enough to buffer, long enough to show an unknown keyword
    const len = this.readU64(state === G_NAME || state === G_TARGET ? expected(state) : "string", Number.MAX_SAFE_INTEGER);
    if (len > max) {
      const what = state === G_NAME || state === G_TARGET ? `${expected(state)} of ${len} bytes (at most ${max})` : `a ${len}-byte string where ${expected(state)} was expected`;
      throw new NarError(`unexpected ${what}`, this.tokenStart);
    }
    this.strLen = len;
    this.expect(len + padding(len), P_BODY);
  }

  private checkPadding(from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if (this.scratch[i] !== 0) throw new NarError("non-zero padding", this.offset - this.need + i);
    }
  }

  private gotString(): void {
    this.checkPadding(this.strLen, this.need);
    const s = this.scratch.subarray(0, this.strLen);
    const state = this.state;
    if (state === G_NAME) return this.gotName(s);
    if (state === G_TARGET) return this.gotTarget(s);
    const alts = LITERAL_BYTES[state]!;
    let which = -1;
    for (let i = 0; i < alts.length; i++) if (alts[i]!.equals(s)) which = i;
    if (which < 0) throw new NarError(`expected ${expected(state)}, got ${show(s)}`, this.tokenStart);
    this.advance(state, which);
    if (this.phase === P_BODY) this.expect(8, P_LEN);
  }

  /** Moves the grammar on after literal number `which` of `state`. */
  private advance(state: number, which: number): void {
    switch (state) {
      case G_MAGIC:
      case G_NODE_KW:
        this.state = G_OPEN;
        return;
      case G_OPEN:
        this.state = G_TYPE;
        return;
      case G_TYPE:
        this.state = G_TYPE_VALUE;
        return;
      case G_TYPE_VALUE:
        if (which === 0) {
          this.executable = false;
          this.state = G_REGULAR_NEXT;
        } else if (which === 1) this.state = G_TARGET_KW;
        else this.openDirectory();
        return;
      case G_REGULAR_NEXT:
        if (which === 0) this.state = G_EXEC_EMPTY;
        else this.startContents();
        return;
      case G_EXEC_EMPTY:
        this.executable = true;
        this.state = G_CONTENTS;
        return;
      case G_CONTENTS:
        this.startContents();
        return;
      case G_TARGET_KW:
        this.state = G_TARGET;
        return;
      case G_CLOSE_NODE:
        this.nodeDone();
        return;
      case G_DIR_NEXT:
        if (which === 0) this.state = G_ENTRY_OPEN;
        else {
          this.stack.pop();
          this.nodeDone();
        }
        return;
      case G_ENTRY_OPEN:
        this.state = G_NAME_KW;
        return;
      case G_NAME_KW:
        this.state = G_NAME;
        return;
      case G_ENTRY_CLOSE:
        this.state = G_DIR_NEXT;
        return;
    }
  }

  private openDirectory(): void {
    if (this.stack.length >= NAR_MAX_DEPTH) {
      throw new NarError(`directories nested deeper than ${NAR_MAX_DEPTH} levels`, this.tokenStart);
    }
    this.stack.push({ path: this.nodePath, prevName: undefined });
    this.onEvent?.({ type: "directory", path: this.nodePath });
    this.state = G_DIR_NEXT;
  }

  private nodeDone(): void {
    this.state = this.stack.length === 0 ? G_DONE : G_ENTRY_CLOSE;
  }

  private startContents(): void {
    this.state = G_CLOSE_NODE; // after the contents
    this.expect(8, P_CSIZE);
  }

  private gotContentSize(): void {
    const size = this.readU64("file contents", Number.MAX_SAFE_INTEGER);
    this.onEvent?.({ type: "regular", path: this.nodePath, executable: this.executable, size });
    this.contentSize = size;
    this.contentLeft = size;
    this.phase = P_CONTENT;
    if (size === 0) this.afterContents();
  }

  private afterContents(): void {
    this.expect(padding(this.contentSize), P_CPAD);
  }

  private gotName(name: Buffer): void {
    const at = this.tokenStart;
    if (name.length === 0) throw new NarError("empty entry name", at);
    if (name.includes(0x2f)) throw new NarError(`entry name ${show(name)} contains '/'`, at);
    if (name.includes(0)) throw new NarError(`entry name ${show(name)} contains a NUL byte`, at);
    if ((name.length === 1 || name.length === 2) && name.every((c) => c === 0x2e)) {
      throw new NarError(`entry name ${show(name)} is not allowed`, at);
    }
    const dir = this.stack[this.stack.length - 1]!;
    if (dir.prevName !== undefined) {
      const cmp = Buffer.compare(dir.prevName, name);
      if (cmp === 0) throw new NarError(`duplicate entry name ${show(name)}`, at);
      if (cmp > 0) throw new NarError(`entry ${show(name)} is not sorted after ${show(dir.prevName)}`, at);
    }
    dir.prevName = Buffer.from(name);
    if (this.onEvent !== undefined) {
      this.nodePath = dir.path.length === 0 ? dir.prevName : Buffer.concat([dir.path, SLASH, dir.prevName]);
    }
    this.state = G_NODE_KW;
    this.expect(8, P_LEN);
  }

  private gotTarget(target: Buffer): void {
    if (target.length === 0) throw new NarError("empty symlink target", this.tokenStart);
    if (target.includes(0)) throw new NarError("symlink target contains a NUL byte", this.tokenStart);
    this.onEvent?.({ type: "symlink", path: this.nodePath, target: Buffer.from(target) });
    this.state = G_CLOSE_NODE;
    this.expect(8, P_LEN);
  }
}
