// Test helpers around NARs: write a described tree to disk, restore a NAR to a directory (with
// the parser's event API), and build NAR bytes token by token for malformed-input tests.
import { chmodSync, closeSync, mkdirSync, openSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { NarParser } from "../../src/nix/nar/parser.ts";
import type { NarEvent } from "../../src/nix/nar/parser.ts";

export type TreeNode =
  | { type: "file"; contents: string | Buffer; executable?: boolean }
  | { type: "symlink"; target: string }
  | { type: "dir"; entries: Record<string, TreeNode> };

export const file = (contents: string | Buffer, executable = false): TreeNode => ({ type: "file", contents, executable });
export const symlink = (target: string): TreeNode => ({ type: "symlink", target });
export const dir = (entries: Record<string, TreeNode>): TreeNode => ({ type: "dir", entries });

/** Creates `node` at `path` (which must not exist). */
export function writeTree(path: string, node: TreeNode): void {
  switch (node.type) {
    case "file":
      writeFileSync(path, node.contents);
      chmodSync(path, node.executable ? 0o755 : 0o644);
      return;
    case "symlink":
      symlinkSync(node.target, path);
      return;
    case "dir":
      mkdirSync(path);
      for (const [name, child] of Object.entries(node.entries)) writeTree(join(path, name), child);
      return;
  }
}

/** Restores a NAR to `dest` (which must not exist); resolves once every file is written. */
export async function restoreNar(source: AsyncIterable<Uint8Array> | Buffer, dest: string): Promise<void> {
  const root = Buffer.from(dest);
  const at = (p: Buffer): Buffer => (p.length === 0 ? root : Buffer.concat([root, Buffer.from("/"), p]));
  let fd: number | undefined;
  let mode = 0o644;
  let openPath: Buffer | undefined;
  const finishFile = (): void => {
    if (fd === undefined) return;
    closeSync(fd);
    chmodSync(openPath!, mode);
    fd = undefined;
  };
  const parser = new NarParser((e: NarEvent) => {
    if (e.type !== "contents") finishFile();
    switch (e.type) {
      case "directory":
        mkdirSync(at(e.path));
        break;
      case "symlink":
        symlinkSync(e.target, at(e.path));
        break;
      case "regular":
        openPath = at(e.path);
        fd = openSync(openPath, "w");
        mode = e.executable ? 0o755 : 0o644;
        break;
      case "contents":
        writeSync(fd!, e.data);
        break;
    }
  });
  const chunks = Buffer.isBuffer(source) ? [source] : source;
  for await (const c of chunks) parser.update(Buffer.from(c));
  parser.end();
  finishFile();
}

/** `str(s)`: u64 length, bytes, zero padding. */
export function narStr(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s) : s;
  return Buffer.concat([u64(b.length), b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}

export function u64(n: number | bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(n));
  return out;
}

/** Concatenates tokens: strings become `str(…)`, Buffers are copied raw. */
export function narBytes(...tokens: (string | Buffer)[]): Buffer {
  return Buffer.concat(tokens.map((t) => (typeof t === "string" ? narStr(t) : t)));
}

/** Tokens of a regular file node with these contents. */
export function regularTokens(contents: string, executable = false): (string | Buffer)[] {
  return ["(", "type", "regular", ...(executable ? ["executable", ""] : []), "contents", narStr(contents), ")"];
}

/** Tokens of one directory entry around `node` tokens. */
export function entryTokens(name: string | Buffer, node: (string | Buffer)[]): (string | Buffer)[] {
  return ["entry", "(", "name", typeof name === "string" ? name : narStr(name), "node", ...node, ")"];
}
