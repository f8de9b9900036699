// The token in an Authorization header: `Bearer <token>`, or `Basic base64(user:token)` as Nix
// sends it from netrc (the user name is ignored). The scheme is case-insensitive and followed by
// exactly one space (upstream's `^(?i)(bearer|basic)(?-i) (.*)$`).
const AUTHORIZATION_RE = /^(bearer|basic) ([^\n]*)$/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function parseAuthorizationHeader(value: string): string | null {
  const match = AUTHORIZATION_RE.exec(value);
  if (!match) return null;
  const scheme = match[1]!;
  const rest = match[2]!;
  if (scheme.toLowerCase() === "bearer") return rest;

  if (rest.length % 4 !== 0 || !BASE64.test(rest)) return null;
  let userPass: string;
  try {
    userPass = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(rest, "base64"));
  } catch {
    return null;
  }
  const colon = userPass.indexOf(":");
  return colon < 0 ? null : userPass.slice(colon + 1);
}
