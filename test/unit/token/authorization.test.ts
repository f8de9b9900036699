import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAuthorizationHeader } from "../../../src/token/jwt.ts";

const basic = (s: string): string => Buffer.from(s).toString("base64");

test("Bearer: the rest of the header, scheme case-insensitive", () => {
  assert.equal(parseAuthorizationHeader("Bearer abc.def.ghi"), "abc.def.ghi");
  assert.equal(parseAuthorizationHeader("bearer some-token"), "some-token");
  assert.equal(parseAuthorizationHeader("BEARER x"), "x");
  assert.equal(parseAuthorizationHeader("Bearer "), "");
  assert.equal(parseAuthorizationHeader("Bearer  two-spaces"), " two-spaces");
});

test("Basic: the password of base64(user:password); the user is ignored", () => {
  assert.equal(parseAuthorizationHeader("Basic c29tZXVzZXI6c29tZXBhc3M="), "somepass");
  assert.equal(parseAuthorizationHeader("baSIC c29tZXVzZXI6c29tZXBhc3M="), "somepass");
  assert.equal(parseAuthorizationHeader(`Basic ${basic(":tok")}`), "tok");
  assert.equal(parseAuthorizationHeader(`Basic ${basic("u:a:b")}`), "a:b");
  assert.equal(parseAuthorizationHeader(`Basic ${basic("nocolon")}`), null);
  assert.equal(parseAuthorizationHeader("Basic !!!"), null);
  assert.equal(parseAuthorizationHeader("Basic abc"), null);
  assert.equal(parseAuthorizationHeader(`Basic ${Buffer.from([0x75, 0x3a, 0xff]).toString("base64")}`), null);
});

test("anything else carries no token", () => {
  for (const h of ["", "Bearer", "Bearertoken", "Token abc", "Digest x", " Bearer x", "Bearer\tx"]) {
    assert.equal(parseAuthorizationHeader(h), null, JSON.stringify(h));
  }
});
