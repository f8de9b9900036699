// Requests Node's HTTP parser rejects (a malformed Content-Length, a bad request line, headers
// too large, a request that timed out) never reach a route. Upstream's hyper answers them with a
// bare status line and no body; fastify's default would answer JSON of a third shape
// (`{"error","message","statusCode"}`), neither Attic's error nor upstream's. We answer as hyper does.
import type { Socket } from "node:net";

export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  // a reset connection has nobody left to answer
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status = "400 Bad Request";
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") status = "408 Request Timeout";
  else if (err.code === "HPE_HEADER_OVERFLOW") status = "431 Request Header Fields Too Large";
  if (socket.writable) socket.write(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  socket.destroy(err);
}
