// JSON request bodies: content-type and shape checks that answer like upstream's axum
// extractors (415 / 400 / 422, plain text), before auth.
import type { FastifyRequest } from "fastify";
import { CACHE_NAME_RE } from "../api/v1.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import { rejections, type PlainRejection } from "./errors.ts";

/** A preValidation hook; async so fastify does not wait for a `done` callback. */
export async function requireJsonContentType(request: FastifyRequest): Promise<void> {
  const ct = request.headers["content-type"];
  const mime = typeof ct === "string" ? ct.split(";")[0]!.trim().toLowerCase() : "";
  if (mime !== "application/json" && !(mime.startsWith("application/") && mime.endsWith("+json"))) {
    throw rejections.notJson();
  }
}

export function shapeError(detail: string): PlainRejection {
  return rejections.wrongShape(detail);
}

export function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw shapeError("invalid type: expected a map");
  return body as Record<string, unknown>;
}

export function field<T>(obj: Record<string, unknown>, name: string, check: (v: unknown) => v is T, what: string, required: true): T;
export function field<T>(obj: Record<string, unknown>, name: string, check: (v: unknown) => v is T, what: string, required: false): T | undefined;
export function field<T>(obj: Record<string, unknown>, name: string, check: (v: unknown) => v is T, what: string, required: boolean): T | undefined {
  const v = obj[name];
  if (v === undefined || (v === null && !required && what.includes("null"))) {
    if (required) throw shapeError(`missing field \`${name}\``);
    return v as T | undefined;
  }
  if (!check(v)) throw shapeError(`${name}: invalid type, expected ${what}`);
  return v;
}

export const isString = (v: unknown): v is string => typeof v === "string";
export const isBool = (v: unknown): v is boolean => typeof v === "boolean";
export const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
export const isI32 = (v: unknown): v is number => isInt(v) && v >= -(2 ** 31) && v < 2 ** 31;
export const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

/** A `{ "cache", "store_path_hashes" }` body (get-missing-paths, delete-paths), each value checked. */
export function cacheAndHashes(raw: unknown): { cacheName: string; hashes: string[] } {
  const body = asObject(raw);
  const cacheName = field(body, "cache", isString, "a cache name", true);
  if (!CACHE_NAME_RE.test(cacheName)) throw shapeError(`cache: invalid cache name "${cacheName.slice(0, 64)}"`);
  const hashes = field(body, "store_path_hashes", isStringArray, "a sequence of store path hashes", true);
  for (const h of hashes) if (!isValidStorePathHash(h)) throw shapeError(`store_path_hashes: invalid store path hash "${h.slice(0, 64)}"`);
  return { cacheName, hashes };
}
