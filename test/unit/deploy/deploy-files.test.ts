// deploy/Dockerfile and the systemd units, checked with parsers: no Docker engine and no systemd
// run on the build machine, so these assert what `docker build` and systemd would act on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DockerfileParser, type Copy, type From, type Instruction } from "dockerfile-ast";
import { parseConfig } from "../../../src/server/config/load.ts";
import { createMetrics } from "../../../src/server/metrics.ts";
import { SOURCE_COMPILE_CACHE, atticdLaunch } from "../../helpers/atticd-process.ts";
import { DEPLOY, REPO, parseUnit, readDeploy, unitValue, type Unit } from "./files.ts";

const KEYWORDS = new Set([
  "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
  "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
]);
const MODES = ["monolithic", "api-server", "garbage-collector", "garbage-collector-once", "db-migrations", "check-config"];

const dockerfile = DockerfileParser.parse(readDeploy("Dockerfile"));
const froms = dockerfile.getFROMs();
const initialArgs = new Map(dockerfile.getInitialARGs().flatMap((a) => a.getProperties().map((p) => [p.getName(), p.getValue() ?? ""] as const)));

/** The instructions of each stage, in order (the parser keeps them flat). */
function stages(): { from: From; name: string; instructions: Instruction[] }[] {
  const all = dockerfile.getInstructions();
  return froms.map((from, i) => {
    const start = all.indexOf(from);
    const end = i + 1 < froms.length ? all.indexOf(froms[i + 1]!) : all.length;
    return { from, name: from.getBuildStage() ?? String(i), instructions: all.slice(start + 1, end) };
  });
}
const finalStage = stages().at(-1)!;

function image(from: From): string {
  return from.getImage()!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a?: string, b?: string) => initialArgs.get((a ?? b)!) ?? "");
}

function argsOf(i: Instruction): string[] {
  return i.getArguments().map((a) => a.getValue());
}

function runs(instructions: Instruction[]): string {
  return instructions.filter((i) => i.getKeyword() === "RUN").map((i) => argsOf(i).join(" ")).join("\n");
}

/** The COPY instructions of a stage (the parser's Copy objects are the same instances). */
function copiesOf(instructions: Instruction[]): Copy[] {
  return dockerfile.getCOPYs().filter((c) => instructions.includes(c));
}

test("Dockerfile: only known instructions (a lost line continuation would show up here)", () => {
  const unknown = dockerfile.getInstructions().map((i) => i.getKeyword()).filter((k) => !KEYWORDS.has(k));
  assert.deepEqual(unknown, []);
});

test("Dockerfile: multi-stage on Node 24, the final stage built FROM a Node image", () => {
  assert.ok(froms.length >= 2, "a build stage and a runtime stage");
  const names = froms.map((f) => f.getBuildStage());
  assert.ok(names.every((n) => n), "every stage is named");
  assert.equal(new Set(names).size, names.length);
  const nodeMajor = /\^?(\d+)/.exec((JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { optionalDependencies: Record<string, string> }).optionalDependencies.node!)![1];
  for (const from of froms) assert.match(image(from), new RegExp(`^node:${nodeMajor}(-|$)`), `${image(from)} is Node ${nodeMajor}`);
  assert.doesNotMatch(image(finalStage.from), /alpine/, "lzma-native ships glibc prebuilds only");
});

test("Dockerfile: COPY --from names earlier stages; the final stage takes dist/ from the build and only production dependencies", () => {
  const all = stages();
  for (const [i, stage] of all.entries()) {
    for (const copy of copiesOf(stage.instructions)) {
      const from = copy.getFromFlag()?.getValue();
      if (from) assert.ok(all.slice(0, i).some((s) => s.name === from), `COPY --from=${from} in stage ${stage.name}`);
    }
  }
  const build = all.find((s) => /\btsc\b/.test(runs(s.instructions)));
  assert.ok(build, "a stage compiles with tsc");
  assert.match(runs(build.instructions), /npm ci/);
  assert.match(runs(build.instructions), /tsconfig\.build\.json/);
  const finalCopies = copiesOf(finalStage.instructions);
  const copied = (source: string) => finalCopies.find((c) => argsOf(c)[0]?.replace(/\/$/, "").endsWith(source));
  const dist = copied("/dist");
  assert.equal(dist?.getFromFlag()?.getValue(), build.name, "dist/ comes from the build stage");
  const modules = copied("/node_modules");
  assert.ok(modules, "node_modules is copied into the final stage");
  const depsStage = all.find((s) => s.name === modules.getFromFlag()?.getValue());
  assert.ok(depsStage && depsStage !== build, "node_modules comes from a stage that is not the build stage");
  assert.match(runs(depsStage.instructions), /npm ci\b.*--omit=dev/, "production dependencies only");
  assert.ok(!finalCopies.some((c) => argsOf(c).slice(0, -1).some((s) => s === "." || s === "src" || /^\.?\/?src\/?$/.test(s))), "no sources in the final stage");
  assert.doesNotMatch(runs(finalStage.instructions), /npm (ci|install)/);
  // dist/*.js are ES modules only because package.json says "type": "module"
  assert.ok(finalCopies.some((c) => argsOf(c)[0] === "package.json" && /^(\.\/?|\/app\/?)$/.test(argsOf(c).at(-1)!)), "package.json beside dist/");
});

test("Dockerfile: COPY sources exist in the repository and pass Dockerfile.dockerignore", () => {
  const ignore = readDeploy("Dockerfile.dockerignore").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  assert.equal(ignore[0], "*", "allow-list: everything else stays out of the build context");
  const allowed = new Set(ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/$/, "")));
  const sources = dockerfile.getCOPYs().filter((c) => !c.getFromFlag()).flatMap((c) => argsOf(c).slice(0, -1));
  assert.ok(sources.length > 0);
  for (const source of sources) {
    assert.ok(existsSync(join(REPO, source)), `COPY source ${source} exists`);
    assert.ok(allowed.has(source.replace(/\/$/, "")), `COPY source ${source} is in Dockerfile.dockerignore's allow-list`);
  }
  for (const entry of allowed) assert.ok(existsSync(join(REPO, entry)), `dockerignore allows ${entry}, which exists`);
});

test("Dockerfile: runs as a non-root user, ENTRYPOINT atticd (the package's bin), EXPOSE 8080", () => {
  const users = finalStage.instructions.filter((i) => i.getKeyword() === "USER").map((i) => argsOf(i)[0]!);
  assert.ok(users.length > 0, "the final stage sets USER");
  const user = users.at(-1)!.split(":")[0]!;
  assert.ok(!["root", "0"].includes(user), `USER ${user} is not root`);
  // a numeric uid lets Kubernetes' runAsNonRoot verify it
  assert.match(user, /^\d+$/);
  assert.match(runs(finalStage.instructions), new RegExp(`useradd [^\\n]*--uid ${user}\\b`), "the uid exists in /etc/passwd");

  const entrypoints = finalStage.instructions.filter((i) => i.getKeyword() === "ENTRYPOINT");
  assert.equal(entrypoints.length, 1);
  const strings = dockerfile.getENTRYPOINTs().at(-1)!.getJSONStrings();
  assert.ok(strings.length > 0, "ENTRYPOINT in the JSON (exec) form, so that signals reach atticd");
  const entrypoint = strings.map((x) => x.getJSONValue());
  assert.equal(entrypoint.at(-1), "atticd");
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { bin: Record<string, string> };
  assert.equal(pkg.bin.atticd, "dist/bin/atticd.js");
  assert.ok(existsSync(join(REPO, "src/bin/atticd.ts")), "tsc emits dist/bin/atticd.js from src/bin/atticd.ts");
  // the bin runs through its shebang, with the memory tuning (Debian's env, coreutils 9, has -S)
  assert.match(readFileSync(join(REPO, "src/bin/atticd.ts"), "utf8"), /^#!\/usr\/bin\/env -S (\w+=\S+ )*node( --[\w-]+=\S+)*\n/);
  assert.match(image(froms.at(-1)!), /bookworm|trixie/, "a Debian image: /usr/bin/env understands -S");
  const run = runs(finalStage.instructions);
  assert.match(run, /ln -s \/app\/dist\/bin\/atticd\.js \/usr\/local\/bin\/atticd/);
  assert.match(run, /chmod [0-7]*7[0-7]{2} [^\n]*dist\/bin\/atticd\.js/, "the bin is executable (tsc drops the mode)");
  if (entrypoint[0] !== "atticd") assert.match(run, new RegExp(`apt-get install [^\\n]*\\b${entrypoint[0]!.split("/").at(-1)}\\b`), `${entrypoint[0]} is installed`);

  const exposed = finalStage.instructions.filter((i) => i.getKeyword() === "EXPOSE").flatMap(argsOf);
  assert.ok(exposed.some((p) => p === "8080" || p === "8080/tcp"), "EXPOSE 8080");
  const { config } = parseConfig(readDeploy("server.toml"), { source: "server.toml", env: { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: Buffer.alloc(32, 7).toString("base64") } });
  assert.match(config.listen, /:8080$/, "the seed's server.toml listens where the image exposes");
});

test("Dockerfile: wget for the seed's health check, and a writable /attic/storage for its volume", () => {
  const hasHealthcheck = finalStage.instructions.some((i) => i.getKeyword() === "HEALTHCHECK");
  const run = runs(finalStage.instructions);
  assert.ok(hasHealthcheck || /apt-get install [^\n]*\bwget\b/.test(run), "wget is installed (compose health checks call it)");
  assert.match(run, /mkdir -p [^\n]*\/attic\/storage\b/);
  assert.match(run, /chown -R atticd:atticd \/attic\b/, "a fresh named volume inherits the owner of the image's folder");
});

const units: [string, string][] = [
  ["atticd.service", "monolithic"],
  ["atticd-gc.service", "garbage-collector"],
];

for (const [file, mode] of units) {
  test(`${file}: runs the built atticd with -f and --mode ${mode}`, () => {
    const unit: Unit = parseUnit(readDeploy(file));
    assert.deepEqual([...unit.keys()], ["Unit", "Service", "Install"]);
    assert.ok(unitValue(unit, "Unit", "Description"));
    assert.equal(unitValue(unit, "Install", "WantedBy"), "multi-user.target");
    const exec = unitValue(unit, "Service", "ExecStart")!.split(/\s+/);
    assert.match(exec[0]!, /^\/\S+\/node$/, "an absolute path to node");
    const script = exec.findIndex((w) => /\/dist\/bin\/atticd\.js$/.test(w));
    assert.ok(script > 0, "runs dist/bin/atticd.js");
    // atticd's memory tuning, as its own start line sets it
    const launch = atticdLaunch();
    assert.deepEqual(exec.slice(1, script), launch.nodeArgs, "the Node flags of atticd's start line");
    const environment = new Map((unit.get("Service")!.get("Environment") ?? []).map((e) => e.split("=", 2) as [string, string]));
    for (const [name, value] of Object.entries(launch.env)) assert.equal(environment.get(name), value, `Environment=${name}=${value}`);
    const flag = (name: string) => exec[exec.indexOf(name) + 1];
    assert.ok(exec.includes("-f"), "an explicit config path (no first-run setup under a service)");
    assert.equal(flag("--mode"), mode);
    assert.ok(MODES.includes(flag("--mode")!));
    assert.ok(unitValue(unit, "Service", "EnvironmentFile"), "secrets come from an environment file, not the world-readable config");
  });

  test(`${file}: hardened (unprivileged user, read-only system, no capabilities; W^X left to V8)`, () => {
    const unit = parseUnit(readDeploy(file));
    const v = (key: string) => unitValue(unit, "Service", key);
    assert.ok(v("DynamicUser") === "yes" || (v("User") !== undefined && v("User") !== "root"), "not root");
    assert.equal(v("NoNewPrivileges"), "yes");
    assert.equal(v("ProtectSystem"), "strict");
    assert.ok(["yes", "read-only", "tmpfs"].includes(v("ProtectHome")!));
    for (const key of ["PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality"]) {
      assert.equal(v(key), "yes", key);
    }
    assert.equal(v("CapabilityBoundingSet"), "", "no capabilities (8080 is not a privileged port)");
    assert.deepEqual(v("RestrictAddressFamilies")!.split(/\s+/).sort(), ["AF_INET", "AF_INET6", "AF_UNIX"]);
    assert.notEqual(v("MemoryDenyWriteExecute"), "yes", "V8's JIT needs writable+executable memory; atticd would not start");
    assert.ok(v("StateDirectory"), "a StateDirectory: the only writable place under ProtectSystem=strict");
  });
}

test("server.systemd.toml: accepted by the loader, and every path it writes lies in the unit's StateDirectory", () => {
  const unit = parseUnit(readDeploy("atticd.service"));
  const state = `/var/lib/${unitValue(unit, "Service", "StateDirectory")}/`;
  const exec = unitValue(unit, "Service", "ExecStart")!.split(/\s+/);
  assert.equal(exec[exec.indexOf("-f") + 1], "/etc/attic/server.toml");
  const { config } = parseConfig(readDeploy("server.systemd.toml"), {
    source: join(DEPLOY, "server.systemd.toml"),
    env: { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: Buffer.alloc(64, 1).toString("base64") },
  });
  assert.equal(config.storage.type, "local");
  if (config.storage.type === "local") assert.ok(config.storage.path.startsWith(state), `${config.storage.path} under ${state}`);
  const sqlite = /^sqlite:\/\/([^?]+)/.exec(config.database.url);
  assert.ok(sqlite, "SQLite on a single box");
  assert.ok(sqlite[1]!.startsWith(state), `${sqlite[1]} under ${state}`);
  assert.equal(unitValue(unit, "Service", "WorkingDirectory"), state.replace(/\/$/, ""));
});

test("npm start runs atticd with the memory tuning of its start line, and the compile cache the test helpers give a run from source", () => {
  const start = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts.start!;
  const launch = atticdLaunch();
  const env = { NODE_COMPILE_CACHE: SOURCE_COMPILE_CACHE, ...launch.env };
  const expected = [...Object.entries(env).map(([k, v]) => `${k}=${v}`), "node", ...launch.nodeArgs, "src/bin/atticd.ts"].join(" ");
  assert.equal(start, expected);
});

test("docs/operations.md lists every file of deploy/ and says how the files were checked; docs/metrics.md lists exactly the attic_ metrics atticd exports", async () => {
  const guide = readFileSync(join(REPO, "docs", "operations.md"), "utf8");
  for (const file of readdirSync(DEPLOY).filter((f) => f !== ".gitignore")) assert.ok(guide.includes(`\`${file}\``), `operations.md mentions ${file}`);
  assert.match(guide, /never been built or started there/);
  const exported = await exportedMetrics();
  const metricsDoc = readFileSync(join(REPO, "docs", "metrics.md"), "utf8");
  const listed = new Set([...metricsDoc.matchAll(/^\| `(attic_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!));
  assert.deepEqual([...listed].sort(), [...exported].filter((n) => n.startsWith("attic_")).sort());
  for (const name of ["process_resident_memory_bytes", "nodejs_heap_size_used_bytes", "nodejs_external_memory_bytes"]) assert.ok(exported.has(name), name);
});

test("deploy/grafana-dashboard.json is a Grafana dashboard whose queries use only metrics atticd exports", async () => {
  const exported = await exportedMetrics();
  const dashboard = JSON.parse(readFileSync(join(DEPLOY, "grafana-dashboard.json"), "utf8")) as { title: string; panels: { title: string; targets?: { expr: string }[] }[] };
  assert.ok(dashboard.title && dashboard.panels.length >= 6);
  const families = new Set([...exported].flatMap((n) => [n, `${n}_bucket`, `${n}_count`, `${n}_sum`]));
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      for (const [name] of target.expr.matchAll(/\b(?:attic|process|nodejs)_[a-z0-9_]+\b/g)) assert.ok(families.has(name), `${panel.title}: ${name} is exported`);
    }
  }
});

/** Metric names in a fresh app's /metrics (every family is declared up front). */
async function exportedMetrics(): Promise<Set<string>> {
  return new Set([...(await createMetrics().render()).matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
}
