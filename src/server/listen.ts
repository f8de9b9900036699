/** `[::]:8080`, `127.0.0.1:0`, `localhost:8080`, `:8080` → host and port for net.listen. */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) throw new Error(`Invalid listen address "${addr}" (expected host:port, e.g. [::]:8080 or 127.0.0.1:8080)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`Invalid port in listen address "${addr}"`);
  const host = m[1] ?? (m[2] || "::");
  return { host, port };
}
