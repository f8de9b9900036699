import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePathInfoJson } from "../../../src/client/nix-path-info.ts";

const B = "/nix/store/5am4n3cmkvrghk4d25i2bv6nik3m0xs7-b";
const A = "/nix/store/x1qnp5psbibsd5i8vjbp0xjk7lq6s0f2-a";
const HEX = "29cf04229cecabbea8d2e3b3405c6ba2feb43b74021149d3aaa923961282269e";

test("Nix 2.8's array output (SRI hash, full references, invalid marker)", () => {
  const text = JSON.stringify([
    { path: B, narHash: "sha256-Kc8EIpzsq76o0uOzQFxrov60O3QCEUnTqqkjlhKCJp4=", narSize: 160, references: [A], deriver: "/nix/store/pvfinnks34k3jvvzvn92i7b8nf33syg0-b.drv", registrationTime: 1, ultimate: true, signatures: ["cache.nixos.org-1:abc"] },
    { path: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", valid: false },
  ]);
  const r = parsePathInfoJson(text, "/nix/store");
  assert.deepEqual(r.invalid, ["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"]);
  assert.deepEqual(r.infos, [
    { path: B, narHash: `sha256:${HEX}`, narSize: 160, references: [A], sigs: ["cache.nixos.org-1:abc"], ca: null, deriver: "/nix/store/pvfinnks34k3jvvzvn92i7b8nf33syg0-b.drv" },
  ]);
});

test("newer Nix's object output (nix32 hash, null for invalid, ca)", () => {
  const text = JSON.stringify({
    [B]: { narHash: "sha256:0yr6vp7wbk8pzlayylwmiaavh42fd3qlndj04hpi97vhd0hc8w54", narSize: 160, references: [A], signatures: [], ca: "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", deriver: null },
    "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x": null,
  });
  const r = parsePathInfoJson(text, "/nix/store");
  assert.deepEqual(r.invalid, ["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"]);
  assert.equal(r.infos[0]?.narHash.startsWith("sha256:"), true);
  assert.equal(r.infos[0]?.narHash.length, "sha256:".length + 64);
  assert.equal(r.infos[0]?.ca, "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
  assert.equal(r.infos[0]?.deriver, null);
});

test("newest Nix's structured hashes and base-name references", () => {
  const text = JSON.stringify({
    [B]: {
      narHash: { algorithm: "sha256", format: "base64", hash: "Kc8EIpzsq76o0uOzQFxrov60O3QCEUnTqqkjlhKCJp4=" },
      narSize: 160,
      references: ["x1qnp5psbibsd5i8vjbp0xjk7lq6s0f2-a"],
      signatures: [],
      ca: { method: "text", hash: { algorithm: "sha256", format: "base16", hash: HEX } },
    },
  });
  const [info] = parsePathInfoJson(text, "/nix/store").infos;
  assert.equal(info?.narHash, `sha256:${HEX}`);
  assert.deepEqual(info?.references, [A]);
  assert.match(info?.ca ?? "", /^text:sha256:[0-9a-z]{52}$/);
});

test("unusable output is a clear error", () => {
  assert.throws(() => parsePathInfoJson("not json", "/nix/store"), /Could not parse/);
  assert.throws(() => parsePathInfoJson(JSON.stringify([{ path: B, narHash: "md5:xyz", narSize: 1 }]), "/nix/store"), /unusable narHash/);
  assert.throws(() => parsePathInfoJson(JSON.stringify([{ path: B, narHash: `sha256:${HEX}` }]), "/nix/store"), /no narSize/);
});
