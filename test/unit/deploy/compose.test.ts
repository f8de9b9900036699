// deploy/compose.yml (the seed's setup built from our image) and deploy/compose.scale.yml
// (replicas, one GC worker, MinIO), checked with a YAML parser: no Docker engine runs on the
// build machine. References between services, volumes, networks and files must resolve, and each
// atticd service must start with a config our loader accepts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../../src/server/config/load.ts";
import type { Config } from "../../../src/server/config/types.ts";
import { parseListenAddress } from "../../../src/server/listen.ts";
import { DEPLOY, loadCompose, parseVolume, readDeploy, readEnvTemplate, type ComposeFile, type ComposeService } from "./files.ts";

const MODES = ["monolithic", "api-server", "garbage-collector", "garbage-collector-once", "db-migrations", "check-config"];
const SECRET = Buffer.alloc(64, 3).toString("base64");
const ATTICD_IMAGE = "attic-ts:latest";

/** What an env file template gives a container once its secret is filled in. */
function envOf(service: ComposeService): Record<string, string> {
  const env: Record<string, string> = {};
  for (const file of service.env_file ?? []) Object.assign(env, readEnvTemplate(file));
  if ("ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64" in env) env.ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64 = SECRET;
  return env;
}

function isAtticd(service: ComposeService): boolean {
  return service.image === ATTICD_IMAGE;
}

/** The config an atticd service starts with: `-f` names a bind-mounted file of deploy/. */
function atticdConfig(name: string, service: ComposeService): { config: Config; mode: string } {
  const command = service.command ?? [];
  const path = command[command.indexOf("-f") + 1];
  assert.ok(command.includes("-f") && path, `${name}: -f PATH`);
  const mode = command.includes("--mode") ? command[command.indexOf("--mode") + 1]! : "monolithic";
  assert.ok(MODES.includes(mode), `${name}: --mode ${mode}`);
  const mount = (service.volumes ?? []).map(parseVolume).find((v) => v.target === path);
  assert.ok(mount && !mount.named, `${name}: ${path} is bind-mounted from a file`);
  const { config } = parseConfig(readDeploy(mount.source), { source: mount.source, env: envOf(service) });
  return { config, mode };
}

function healthUrl(service: ComposeService): URL {
  const test = service.healthcheck?.test ?? [];
  const url = /wget [^|]*--spider (\S+)/.exec(test.join(" "))?.[1];
  assert.ok(url, `a wget --spider health check: ${test.join(" ")}`);
  return new URL(url);
}

function checkReferences(file: string, compose: ComposeFile): void {
  const names = Object.keys(compose.services);
  for (const [name, service] of Object.entries(compose.services)) {
    assert.ok(service.image || service.build, `${file} ${name}: image or build`);
    if (service.build) {
      assert.ok(existsSync(join(DEPLOY, service.build.context, service.build.dockerfile ?? "Dockerfile")), `${file} ${name}: the Dockerfile exists`);
      assert.ok(existsSync(join(DEPLOY, service.build.context, "package.json")), `${file} ${name}: the build context is the repository`);
    }
    for (const volume of (service.volumes ?? []).map(parseVolume)) {
      if (volume.named) assert.ok(compose.volumes && volume.source in compose.volumes, `${file} ${name}: volume ${volume.source} is declared`);
      else assert.ok(existsSync(join(DEPLOY, volume.source)), `${file} ${name}: ${volume.source} exists`);
      if (!volume.named) assert.ok(volume.readOnly, `${file} ${name}: ${volume.source} is mounted read-only`);
    }
    const networks = Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? {});
    for (const network of networks) assert.ok(compose.networks && network in compose.networks, `${file} ${name}: network ${network} is declared`);
    for (const envFile of service.env_file ?? []) {
      assert.ok(existsSync(join(DEPLOY, `${envFile}.example`)), `${file} ${name}: ${envFile}.example documents ${envFile}`);
      assert.ok(readDeploy(".gitignore").split("\n").includes(envFile), `${envFile} holds secrets: git-ignored`);
    }
    for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
      assert.ok(names.includes(dependency), `${file} ${name}: depends on ${dependency}, a service`);
      const target = compose.services[dependency]!;
      if (condition === "service_healthy") assert.ok(target.healthcheck?.test, `${file} ${name}: ${dependency} has a health check`);
      else if (condition === "service_completed_successfully") assert.equal(target.restart, "no", `${file} ${dependency} runs once`);
      else assert.equal(condition, "service_started");
    }
  }
}

test("compose files parse and every reference resolves", () => {
  for (const file of ["compose.yml", "compose.scale.yml"]) checkReferences(file, loadCompose(file));
});

test("compose.yml is the seed's setup: attic + pgattic, -f /attic/server.toml, prod.env, both health checks", () => {
  const { services } = loadCompose("compose.yml");
  assert.deepEqual(Object.keys(services).sort(), ["attic", "pgattic"]);
  const attic = services.attic!;
  const pgattic = services.pgattic!;
  assert.deepEqual(attic.command, ["-f", "/attic/server.toml"]);
  assert.equal(attic.build?.dockerfile, "deploy/Dockerfile");
  assert.ok(attic.ports?.includes("8080:8080"));
  assert.deepEqual((attic.volumes ?? []).map(parseVolume).map((v) => [v.source, v.target]), [
    ["./server.toml", "/attic/server.toml"],
    ["attic-data", "/attic/storage"],
  ]);
  assert.deepEqual(attic.env_file, ["prod.env"]);
  assert.deepEqual(pgattic.env_file, ["prod.env"]);
  assert.deepEqual(attic.depends_on, { pgattic: { condition: "service_healthy" } });
  // the seed's check, word for word
  assert.deepEqual(attic.healthcheck?.test, ["CMD-SHELL", "wget --no-verbose --tries=1 --spider http://attic:8080 || exit 1"]);
  assert.equal(pgattic.image, "postgres:17.6-alpine");
  assert.deepEqual(pgattic.healthcheck?.test, ["CMD-SHELL", "pg_isready -U $${POSTGRES_USER} -d $${POSTGRES_DB}"]);
  assert.deepEqual((pgattic.volumes ?? []).map(parseVolume).map((v) => v.target), ["/var/lib/postgresql/data"]);
  assert.ok(!(pgattic.ports ?? []).some((p) => /^(0\.0\.0\.0:)?5432:/.test(p)), "PostgreSQL is not published on every interface");
});

test("compose.yml: atticd's config reaches pgattic with prod.env's credentials, and the health check reaches atticd", () => {
  const { services } = loadCompose("compose.yml");
  const attic = services.attic!;
  const { config, mode } = atticdConfig("attic", attic);
  assert.equal(mode, "monolithic");
  const env = readEnvTemplate("prod.env");
  const db = new URL(config.database.url);
  assert.equal(db.hostname, "pgattic", "the database host is the postgres service");
  assert.deepEqual([decodeURIComponent(db.username), decodeURIComponent(db.password), db.pathname.slice(1)], [env.POSTGRES_USER, env.POSTGRES_PASSWORD, env.POSTGRES_DB]);
  const storage = (attic.volumes ?? []).map(parseVolume).find((v) => v.named);
  assert.ok(config.storage.type === "local" && config.storage.path === storage?.target, "local storage lives on the named volume");
  const url = healthUrl(attic);
  assert.equal(url.hostname, "attic");
  assert.equal(Number(url.port || 80), parseListenAddress(config.listen).port);
  assert.equal(config.allowedHosts.length, 0, "with allowed-hosts set, the health check's Host (attic:8080) must be in it");
});

test("compose.scale.yml: replicas of api-server behind nginx, exactly one GC worker, migrations first, one bucket", () => {
  const { services } = loadCompose("compose.scale.yml");
  const atticd = Object.entries(services).filter(([, s]) => isAtticd(s));
  const modes = new Map(atticd.map(([name, s]) => [name, atticdConfig(name, s)] as const));
  const byMode = (mode: string) => atticd.filter(([name]) => modes.get(name)!.mode === mode);

  const api = byMode("api-server");
  assert.equal(api.length, 1);
  const [apiName, apiService] = api[0]!;
  assert.ok((apiService.deploy?.replicas ?? 1) >= 2, "at least two replicas");
  assert.ok(!apiService.container_name && !apiService.ports, "replicas have no fixed name or host port");
  const gc = byMode("garbage-collector");
  assert.equal(gc.length, 1);
  assert.equal(gc[0]![1].deploy?.replicas ?? 1, 1, "garbage collection must not be replicated");
  const migrate = byMode("db-migrations");
  assert.equal(migrate.length, 1);
  for (const [name, service] of [...api, ...gc]) {
    assert.equal(service.depends_on?.[migrate[0]![0]]?.condition, "service_completed_successfully", `${name} waits for the migrations`);
  }
  assert.equal(byMode("monolithic").length, 0, "no monolithic process next to the GC worker");

  const { config } = modes.get(apiName)!;
  const health = healthUrl(apiService);
  assert.equal(health.pathname, "/healthz", "replicas report readiness, database included");
  assert.equal(Number(health.port || 80), parseListenAddress(config.listen).port);
  const configs = [...modes.values()].map((m) => JSON.stringify([m.config.database.url, m.config.storage]));
  assert.equal(new Set(configs).size, 1, "every atticd process shares one database and one bucket");

  const env = envOf(apiService);
  const db = new URL(config.database.url);
  assert.ok(db.hostname in services && services[db.hostname]!.image?.startsWith("postgres:"));
  assert.deepEqual([db.username, db.password, db.pathname.slice(1)], [env.POSTGRES_USER, env.POSTGRES_PASSWORD, env.POSTGRES_DB]);
  assert.equal(config.storage.type, "s3");
  if (config.storage.type !== "s3") return;
  const endpoint = new URL(config.storage.endpoint!);
  assert.ok(endpoint.hostname in services, "the S3 endpoint is the MinIO service");
  assert.equal(config.presignedRedirects, false, "clients cannot reach a compose-internal endpoint, so no presigned redirects");
  assert.deepEqual([env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY], [env.MINIO_ROOT_USER, env.MINIO_ROOT_PASSWORD]);
  const init = Object.values(services).find((s) => /\bmc mb\b/.test((s.command ?? []).join(" ")));
  assert.match((init?.command ?? []).join(" "), new RegExp(`mc mb [^&]*local/${config.storage.bucket}\\b`), "the bucket is created");

  const lb = Object.values(services).find((s) => s.image?.startsWith("nginx:"));
  assert.ok(lb, "an nginx load balancer");
  assert.ok(lb.ports?.includes("8080:8080"));
  const conf = (lb.volumes ?? []).map(parseVolume).find((v) => v.target === "/etc/nginx/nginx.conf");
  assert.ok(conf);
  const nginx = readFileSync(join(DEPLOY, conf.source), "utf8");
  assert.match(nginx, new RegExp(`server ${apiName}:${parseListenAddress(config.listen).port} resolve\\b`), "nginx balances over the replicas");
  assert.match(nginx, /client_max_body_size 0;/, "uploads have no size limit");
  assert.match(nginx, /proxy_request_buffering off;/, "uploads stream through");
  assert.match(nginx, /location = \/metrics/, "metrics stay private");
});

test("env file templates: compose's quotes are removed, and the placeholder secret is refused, not used", () => {
  for (const file of ["prod.env", "scale.env"]) {
    const env = readEnvTemplate(file);
    assert.equal(env.ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64, "<openssl rand 64 | base64 -w0>", `${file}: the seed's placeholder`);
  }
  const text = readDeploy("server.toml");
  assert.throws(
    () => parseConfig(text, { source: "server.toml", env: readEnvTemplate("prod.env") }),
    (err: Error) => err.name === "ConfigError" && /ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64/.test(err.message),
  );
  // `docker run --env-file` keeps the quotes: the secret is then not valid base64 either
  assert.throws(
    () => parseConfig(text, { source: "server.toml", env: { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: `"${SECRET}"` } }),
    /not valid base64/,
  );
});
