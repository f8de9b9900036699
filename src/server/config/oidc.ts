// `[[oidc.issuers]]` and their `[[oidc.issuers.rules]]` (ours, issue 18), read entry by entry
// (table-arrays.ts); problems name the entry, e.g. `oidc.issuers[1].rules[0].push`.
import { isValidCachePattern } from "../../token/permissions.ts";
import type { PermissionName } from "../../token/permissions.ts";
import type { ConfigReader } from "./reader.ts";
import { isTable, readEntry } from "./table-arrays.ts";
import type { OidcIssuerConfig, OidcRule } from "./types.ts";

const RULE_PERMISSIONS: readonly (readonly [key: string, permission: PermissionName])[] = [
  ["pull", "pull"],
  ["push", "push"],
  ["delete", "delete"],
  ["create-cache", "createCache"],
  ["configure-cache", "configureCache"],
  ["configure-cache-retention", "configureCacheRetention"],
  ["destroy-cache", "destroyCache"],
];

export function readOidc(r: ConfigReader): { issuers: readonly OidcIssuerConfig[] } {
  const raw = r.raw.get("oidc.issuers");
  if (raw === undefined) return { issuers: [] };
  if (!Array.isArray(raw) || !raw.every(isTable)) {
    r.problem("oidc.issuers", "expected an array of tables ([[oidc.issuers]])");
    return { issuers: [] };
  }
  const issuers: OidcIssuerConfig[] = [];
  raw.forEach((body, i) => {
    const where = `oidc.issuers[${i}]`;
    const v = readEntry(r, "oidc.issuers", where, body, ["rules"]);
    const name = v.get("name") as string | undefined;
    if (name !== undefined && !/^[A-Za-z0-9_-]{1,50}$/.test(name)) r.problem(`${where}.name`, "use 1 to 50 letters, digits, - and _");
    if (name !== undefined && issuers.some((x) => x.name === name)) r.problem(`${where}.name`, `another issuer is named "${name}"`);
    const rulesRaw = body.rules ?? [];
    const rules: OidcRule[] = [];
    if (!Array.isArray(rulesRaw) || !rulesRaw.every(isTable)) r.problem(`${where}.rules`, "expected an array of tables ([[oidc.issuers.rules]])");
    else {
      rulesRaw.forEach((ruleBody, j) => {
        const at = `${where}.rules[${j}]`;
        const rv = readEntry(r, "oidc.issuers.rules", at, ruleBody, []);
        const grants: { pattern: string; permission: PermissionName }[] = [];
        for (const [key, permission] of RULE_PERMISSIONS) {
          for (const pattern of (rv.get(key) as readonly string[] | undefined) ?? []) {
            if (!isValidCachePattern(pattern)) r.problem(`${at}.${key}`, `invalid cache name pattern "${pattern}"`);
            else grants.push({ pattern, permission });
          }
        }
        const claims = rv.get("claims") as Record<string, readonly string[]> | undefined;
        if (claims !== undefined && Object.keys(claims).length === 0) r.problem(`${at}.claims`, "name at least one claim (a rule without conditions would admit every token of the issuer)");
        if (grants.length === 0) r.warn(at, "grants no permission");
        if (claims !== undefined) rules.push({ claims, grants });
      });
    }
    if (rules.length === 0 && Array.isArray(rulesRaw) && rulesRaw.length === 0) r.warn(where, "has no [[oidc.issuers.rules]]: every exchange will be refused");
    const issuer = v.get("issuer") as string | undefined;
    const jwksUrl = v.get("jwks-url") as string | undefined;
    const audience = v.get("audience") as string | undefined;
    const tokenValidity = v.get("token-validity") as number | undefined;
    if (name !== undefined && issuer !== undefined && jwksUrl !== undefined && audience !== undefined && tokenValidity !== undefined) {
      issuers.push({ name, issuer, jwksUrl, audience, tokenValidity, rules });
    }
  });
  return { issuers };
}
