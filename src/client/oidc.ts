// The CI job's OIDC ID token for `attic login --oidc` (ours), read the way each CI documents it:
//   --id-token-file PATH / --id-token-env VAR   given on the command line;
//   GitHub Actions   ACTIONS_ID_TOKEN_REQUEST_URL + ACTIONS_ID_TOKEN_REQUEST_TOKEN (the job needs
//                    `permissions: id-token: write`), asked for with `&audience=…`;
//   GitLab CI        the variable named in the job's `id_tokens:` (pass it with --id-token-env),
//                    or ATTIC_ID_TOKEN, the name this client looks for by default.
import { readFile } from "node:fs/promises";
import type { Ctx } from "./context.ts";
import { NetworkError, UserError } from "./errors.ts";

export const DEFAULT_ID_TOKEN_ENV = "ATTIC_ID_TOKEN";

export interface IdTokenSource {
  idTokenFile?: string;
  idTokenEnv?: string;
  /** the audience GitHub Actions puts in the token */
  audience: string;
}

export async function readIdToken(source: IdTokenSource, ctx: Ctx): Promise<{ token: string; from: string }> {
  if (source.idTokenFile !== undefined) {
    try {
      return { token: (await readFile(source.idTokenFile, "utf8")).trim(), from: source.idTokenFile };
    } catch (err) {
      throw new UserError(`Failed to read the ID token from ${source.idTokenFile}: ${(err as Error).message}`);
    }
  }
  if (source.idTokenEnv !== undefined) {
    const value = ctx.env[source.idTokenEnv];
    if (value === undefined || value.trim() === "") throw new UserError(`The environment variable ${source.idTokenEnv} holds no ID token`);
    return { token: value.trim(), from: `$${source.idTokenEnv}` };
  }
  const url = ctx.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = ctx.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (url && bearer) return { token: await githubIdToken(url, bearer, source.audience), from: "GitHub Actions" };
  const fallback = ctx.env[DEFAULT_ID_TOKEN_ENV];
  if (fallback !== undefined && fallback.trim() !== "") return { token: fallback.trim(), from: `$${DEFAULT_ID_TOKEN_ENV}` };
  throw new UserError(
    `No OIDC ID token found: on GitHub Actions give the job \`permissions: id-token: write\`; on GitLab CI declare one in \`id_tokens:\` and pass its variable with --id-token-env (or name it ${DEFAULT_ID_TOKEN_ENV}); elsewhere use --id-token-file or --id-token-env`,
  );
}

async function githubIdToken(requestUrl: string, bearer: string, audience: string): Promise<string> {
  const url = new URL(requestUrl);
  url.searchParams.set("audience", audience);
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `bearer ${bearer}`, accept: "application/json" } });
  } catch (err) {
    throw new NetworkError(url.origin, err);
  }
  const text = await res.text();
  if (!res.ok) throw new UserError(`GitHub Actions refused an ID token (HTTP ${res.status}): ${text.slice(0, 200)}`);
  let value: unknown;
  try {
    value = (JSON.parse(text) as { value?: unknown }).value;
  } catch {
    value = undefined;
  }
  if (typeof value !== "string") throw new UserError("GitHub Actions answered without an ID token");
  return value;
}
