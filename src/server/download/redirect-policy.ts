// When a NAR download may be answered with a 307 to a presigned S3 URL. A client that follows the
// redirect re-sends the credentials it holds for the target's host name: curl (inside Nix) reads
// netrc by host name only, whatever the port, so a bucket on the server's host name receives the
// netrc `Authorization: Basic …` next to the URL's signature and S3 refuses the request
// (`400 InvalidArgument: Only one auth mechanism allowed`). A redirect must never break a pull,
// and the server cannot know which hosts a client holds credentials for, so it redirects only a
// caller that showed none, on a public cache, to a host name other than its own; everything else
// is streamed (docs/decisions.md, "Presigned redirects").
import type { IncomingHttpHeaders } from "node:http";

export interface RedirectRequest {
  headers: IncomingHttpHeaders;
}

/**
 * The check a presigned URL must pass before it is sent as a redirect, or null when this request
 * gets no redirect whatever the URL (redirects disabled, credentials sent, or a private cache).
 */
export function presignedRedirectGuard(enabled: boolean, request: RedirectRequest, cacheIsPublic: boolean): ((url: string) => boolean) | null {
  if (!enabled || !cacheIsPublic || request.headers.authorization !== undefined) return null;
  const own = requestHostNames(request.headers);
  return (url) => {
    const target = hostNameOf(url);
    return target !== null && !own.has(target);
  };
}

/** The host names the client may have addressed: `Host`, and `X-Forwarded-Host` behind a proxy. */
function requestHostNames(headers: IncomingHttpHeaders): Set<string> {
  const names = new Set<string>();
  const forwarded = headers["x-forwarded-host"];
  const given = [headers.host, ...(Array.isArray(forwarded) ? forwarded : (forwarded ?? "").split(","))];
  for (const value of given) {
    const name = value ? hostNameOf(`http://${value.trim()}`) : null;
    if (name) names.add(name);
  }
  return names;
}

function hostNameOf(url: string): string | null {
  try {
    return new URL(url).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return null;
  }
}
