// The launcher's version rule agrees with engines.node, and the three tools share one version.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { isSupportedNode, MIN_NODE } from "../../../src/bin/launch.ts";
import { version } from "../../../src/cli/version.ts";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
  engines: { node: string };
  optionalDependencies: Record<string, string>;
};

test("MIN_NODE is engines.node; the pinned Node (optional dependency `node`) satisfies it", () => {
  assert.equal(pkg.engines.node, `>=${MIN_NODE}`);
  const pinned = /^\^?(\d+\.\d+)/.exec(pkg.optionalDependencies.node!)![1]!;
  assert.ok(isSupportedNode(pinned), pinned);
});

test("isSupportedNode compares major, then minor", () => {
  for (const v of ["v22.15.0", "22.15.1", "v22.20.0", "v24.0.0", "v30.1.2"]) assert.equal(isSupportedNode(v), true, v);
  for (const v of ["v20.20.2", "v22.14.9", "v18.0.0", "v8.0.0", "garbage"]) assert.equal(isSupportedNode(v), false, v);
});

test("the one version: package.json's", () => {
  assert.equal(version(), pkg.version);
});
