// Listen addresses, one rule for `listen` in the config and `atticd -l`: what upstream's Rust
// SocketAddr accepts, `IPv4:port` or `[IPv6]:port`. Host names (`localhost:8080`) and a bare
// `:8080` are refused, as upstream refuses them.
import { isIPv4, isIPv6 } from "node:net";

export class ListenAddressError extends Error {}

/** `[::]:8080`, `127.0.0.1:0` → host and port for net.listen; anything else throws ListenAddressError. */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const v6 = /^\[([^\]]+)\]:(\d{1,5})$/.exec(addr);
  const v4 = /^([\d.]+):(\d{1,5})$/.exec(addr);
  const host = v6 ? v6[1]! : v4 ? v4[1]! : null;
  const port = Number((v6 ?? v4)?.[2]);
  if (host === null || !(v6 ? isIPv6(host) : isIPv4(host)) || port > 65535) {
    throw new ListenAddressError(`expected a socket address such as "[::]:8080" or "127.0.0.1:8080", got ${JSON.stringify(addr)} (host names are not allowed)`);
  }
  return { host, port };
}
