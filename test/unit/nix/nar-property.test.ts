// Property tests: random trees round-trip through serialize -> parse -> restore -> serialize, and
// no input (random or a mutated valid NAR) makes the parser fail with anything but a NarError.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { NarError, NarParser } from "../../../src/nix/nar/parser.ts";
import { validateNar } from "../../helpers/validate-nar.ts";
import { narChunks } from "../../../src/nix/nar/serialize.ts";
import { dir, file, restoreNar, symlink, writeTree } from "../../helpers/nar-tree.ts";
import type { TreeNode } from "../../helpers/nar-tree.ts";

const nameArb = fc
  .string({ unit: fc.constantFrom("a", "B", "z", "_", "-", ".", "0", "ä", "é", " ", "~", "Z"), minLength: 1, maxLength: 6 })
  .filter((n) => n !== "." && n !== "..");

const { node: treeArb } = fc.letrec<{ node: TreeNode; leaf: TreeNode; directory: TreeNode }>((tie) => ({
  leaf: fc.oneof(
    fc.record({ contents: fc.uint8Array({ maxLength: 300 }), executable: fc.boolean() }).map((r) => file(Buffer.from(r.contents), r.executable)),
    fc.constantFrom("target", "../up", "/abs/path", "dangling-ä").map(symlink),
  ),
  directory: fc
    .uniqueArray(fc.tuple(nameArb, tie("node")), { maxLength: 5, selector: ([name]) => name })
    .map((entries) => dir(Object.fromEntries(entries))),
  node: fc.oneof({ depthSize: "small", withCrossShrink: true }, tie("leaf"), tie("directory")),
}));

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

/** Rebuilds a TreeNode from parser events (inverse of writeTree, for comparison). */
function treeOf(nar: Buffer): TreeNode {
  let root: TreeNode | undefined;
  const nodes = new Map<string, TreeNode>();
  const contents = new Map<string, Buffer[]>();
  const attach = (path: string, node: TreeNode): void => {
    nodes.set(path, node);
    if (path === "") root = node;
    else {
      const slash = path.lastIndexOf("/");
      const parent = nodes.get(slash < 0 ? "" : path.slice(0, slash));
      assert.ok(parent?.type === "dir");
      parent.entries[path.slice(slash + 1)] = node;
    }
  };
  const parser = new NarParser((e) => {
    const path = e.path.toString();
    if (e.type === "directory") attach(path, dir({}));
    else if (e.type === "symlink") attach(path, symlink(e.target.toString()));
    else if (e.type === "regular") {
      contents.set(path, []);
      attach(path, file(Buffer.alloc(0), e.executable));
    } else contents.get(path)!.push(Buffer.from(e.data));
  });
  parser.update(nar);
  parser.end();
  for (const [path, parts] of contents) {
    const n = nodes.get(path)!;
    assert.ok(n.type === "file");
    n.contents = Buffer.concat(parts);
  }
  return root!;
}

function normalize(node: TreeNode): unknown {
  if (node.type === "file") return { file: Buffer.from(node.contents).toString("hex"), x: node.executable ?? false };
  if (node.type === "symlink") return { symlink: node.target };
  return Object.fromEntries(Object.entries(node.entries).map(([k, v]) => [k, normalize(v)]));
}

test("random trees: serialize -> parse gives the same tree, restore -> serialize the same bytes", async () => {
  const base = mkdtempSync(join(tmpdir(), "nar-prop-"));
  let n = 0;
  try {
    await fc.assert(
      fc.asyncProperty(treeArb, async (tree) => {
        const src = join(base, `src-${n}`);
        const dst = join(base, `dst-${n++}`);
        writeTree(src, tree);
        const nar = await collect(narChunks(src));
        const { narHash, narSize } = await validateNar([nar]);
        assert.equal(narSize, nar.length);
        assert.equal(narHash.toBase16(), createHash("sha256").update(nar).digest("hex"));
        assert.deepEqual(normalize(treeOf(nar)), normalize(tree));
        await restoreNar(nar, dst);
        assert.deepEqual(await collect(narChunks(dst)), nar);
      }),
      { numRuns: 60 },
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

function parseOutcome(bytes: Uint8Array, splits: number[] = []): string {
  const p = new NarParser();
  try {
    let at = 0;
    for (const s of [...splits.filter((x) => x < bytes.length).sort((a, b) => a - b), bytes.length]) {
      p.update(Buffer.from(bytes.subarray(at, s)));
      at = s;
    }
    p.end();
    return "ok";
  } catch (e) {
    if (e instanceof NarError) return e.message;
    throw e; // anything else is a crash
  }
}

test("random bytes never crash the parser", () => {
  const magic = Buffer.from("0d000000000000006e69782d617263686976652d31000000", "hex");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, withMagic) => {
      const input = withMagic ? Buffer.concat([magic, bytes]) : bytes;
      parseOutcome(input);
    }),
    { numRuns: 2000 },
  );
});

test("mutated valid NARs never crash the parser, and splitting never changes the verdict", async () => {
  const base = mkdtempSync(join(tmpdir(), "nar-mut-"));
  try {
    writeTree(
      join(base, "t"),
      dir({ a: file("hello", true), b: dir({ c: file(Buffer.alloc(20, 7)), d: symlink("../a") }), e: file("") }),
    );
    const valid = await collect(narChunks(join(base, "t")));
    assert.equal(parseOutcome(valid), "ok");
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(valid.length - 1), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(valid.length - 1), value: fc.constant(0) }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.nat(valid.length), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.nat(valid.length - 1), value: fc.integer({ min: 1, max: 16 }) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(valid.length), { maxLength: 4 }), (ms, splits) => {
        let bytes = Buffer.from(valid);
        for (const m of ms) {
          const at = Math.min(m.at, bytes.length);
          if (m.kind === "set" && at < bytes.length) bytes[at] = m.value;
          else if (m.kind === "cut") bytes = bytes.subarray(0, at);
          else if (m.kind === "insert") bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([m.value]), bytes.subarray(at)]);
          else if (m.kind === "delete") bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.value)]);
        }
        assert.equal(parseOutcome(bytes, splits), parseOutcome(bytes));
      }),
      { numRuns: 3000 },
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
