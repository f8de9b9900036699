import type { FastifyInstance } from "fastify";

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Attic Binary Cache</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}code{background:#eee;padding:.1em .3em}</style>
</head>
<body>
<h1>Attic Binary Cache</h1>
<p>This is an Attic-compatible Nix binary cache server.</p>
<p>Log in with <code>attic login &lt;name&gt; &lt;this URL&gt; &lt;token&gt;</code>, then <code>attic use &lt;cache&gt;</code>.</p>
</body>
</html>
`;

export async function homeRoutes(app: FastifyInstance): Promise<void> {
  app.get("/", async (_request, reply) => reply.type("text/html; charset=utf-8").send(PAGE));
}
