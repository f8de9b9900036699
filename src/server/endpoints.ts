// The URLs the server tells clients about (cache-config answers, nix-cache-info hints), as
// upstream: configured, else derived from the request's Host and X-Forwarded-Proto.
import type { FastifyRequest } from "fastify";
import type { Config } from "./config/types.ts";

/** upstream `api_endpoint()`: configured, else `{http|https}://{Host}/` */
export function apiEndpoint(request: FastifyRequest, config: Config): string {
  if (config.apiEndpoint) return config.apiEndpoint;
  return `${request.attic.https ? "https" : "http"}://${request.attic.host}/`;
}

export function substituterEndpoint(request: FastifyRequest, config: Config, cacheName: string): string {
  return (config.substituterEndpoint ?? apiEndpoint(request, config)) + cacheName;
}
