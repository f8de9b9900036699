// The page around each view: landmarks (header, nav, main), the token form that the script
// (assets/app.js) reveals, and the security headers every dashboard answer carries.
import type { FastifyReply } from "fastify";
import { html, type Html } from "./html.ts";

export type Section = "caches" | "server";

export interface Viewer {
  /** the token's `sub`, when a valid token came with the request */
  subject: string | null;
  /** a token came but was refused (expired, wrong signature) */
  refused: boolean;
  /** may see the server-wide figures (a token that may pull from every cache) */
  admin: boolean;
}

export function page(title: string, section: Section, main: Html): Html {
  const current = (s: Section) => (s === section ? html` aria-current="page"` : "");
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Attic binary cache</title>
<link rel="stylesheet" href="/_dashboard/style.css">
<script type="module" src="/_dashboard/app.js"></script>
</head>
<body>
<a class="skip" href="#content">Skip to the figures</a>
<header>
<p class="brand"><a href="/">Attic binary cache</a></p>
<nav aria-label="Dashboard"><ul><li><a href="/"${current("caches")}>Caches</a></li><li><a href="/_dashboard/server"${current("server")}>Server</a></li></ul></nav>
<form id="token-form" hidden>
<label for="token-input">Token</label>
<input id="token-input" type="password" autocomplete="off" spellcheck="false" aria-describedby="token-help">
<button type="submit">Show my caches</button>
<button type="button" id="token-forget" hidden>Forget the token</button>
<p id="token-help" class="help">Kept in this tab only (session storage), sent only to this server.</p>
</form>
</header>
<main id="content" tabindex="-1">
${main}
</main>
</body>
</html>
`;
}

/** The viewer line at the top of each view. */
export function viewerLine(viewer: Viewer): Html {
  if (viewer.refused) return html`<p class="viewer warn" role="status" data-viewer="refused">The token was not accepted (expired, or not signed by this server): showing public caches only.</p>`;
  if (viewer.subject !== null) return html`<p class="viewer" role="status" data-viewer="token">Signed in with a token for <strong>${viewer.subject}</strong>${viewer.admin ? " (may see every cache)" : ""}.</p>`;
  return html`<p class="viewer" role="status" data-viewer="public">Showing public caches. Enter a token to see private ones.</p>`;
}

/** Views depend on the token; nothing may be cached, framed or sent elsewhere. */
export function sendView(reply: FastifyReply, body: Html, status = 200): FastifyReply {
  return reply
    .code(status)
    .header(
      "content-security-policy",
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    )
    .header("referrer-policy", "no-referrer")
    .header("x-content-type-options", "nosniff")
    .header("cache-control", "no-store")
    .header("vary", "authorization")
    .type("text/html; charset=utf-8")
    .send(body.text);
}

/** One figure of a <dl>, with its raw value for tests and scripts. */
export function figure(name: string, label: string, shown: string, value: number | string, help?: string): Html {
  return html`<div class="figure"><dt>${label}</dt><dd data-figure="${name}" data-value="${value}">${shown}</dd>${help ? html`<dd class="help">${help}</dd>` : ""}</div>`;
}
