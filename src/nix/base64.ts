// Strict standard base64 (padded). Buffer.from(s, "base64") silently skips junk characters,
// which would let a malformed key or hash decode to something; this refuses instead.

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes padded standard base64, or returns undefined when `s` is not exactly that. */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (!BASE64_RE.test(s)) return undefined;
  const out = Buffer.from(s, "base64");
  // Non-canonical trailing bits (e.g. "AB==" vs "AA==") would not round-trip.
  if (out.toString("base64") !== s) return undefined;
  return out;
}

/** Length of the padded base64 form of `byteLength` bytes. */
export function base64EncodedLength(byteLength: number): number {
  return Math.ceil(byteLength / 3) * 4;
}
