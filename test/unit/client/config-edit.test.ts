import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { editConfig, parseConfig, saveConfig, serializeConfig, type ClientConfig } from "../../../src/client/config.ts";

type Case = [name: string, before: string, change: (c: ClientConfig) => void, after: string];

/** What `attic login NAME ENDPOINT TOKEN` does to the config. */
const login = (name: string, endpoint: string, token?: string) => (c: ClientConfig): void => {
  const existing = c.servers.get(name);
  if (existing === undefined) c.servers.set(name, token === undefined ? { endpoint } : { endpoint, token });
  else {
    existing.endpoint = endpoint;
    if (token !== undefined) {
      existing.token = token;
      delete existing.tokenFile;
    }
  }
  if (c.servers.size === 1) c.defaultServer = name;
};
const both = (...fs: ((c: ClientConfig) => void)[]) => (c: ClientConfig): void => fs.forEach((f) => f(c));
const setDefault = (name: string) => (c: ClientConfig): void => void (c.defaultServer = name);

const USER_FILE = `# my attic servers
default-server = "a" # the usual one

[servers.a] # first
endpoint = 'http://a'  # literal string, kept as written
token = "old" # rotated monthly
colour = "blue"

# the second one
[servers."my-b"]
endpoint = "http://b"

[unrelated]
x = 1
`;

const cases: Case[] = [
  [
    "a token is replaced in place, its comment and every other line kept",
    USER_FILE,
    login("a", "http://a", "new"),
    USER_FILE.replace('token = "old"', 'token = "new"'),
  ],
  [
    "a changed endpoint in a quoted table",
    USER_FILE,
    login("my-b", "https://b.example"),
    USER_FILE.replace('endpoint = "http://b"', 'endpoint = "https://b.example"'),
  ],
  [
    "a missing key goes after the table's last key, before its trailing blank line",
    USER_FILE,
    login("my-b", "http://b", "tb"),
    USER_FILE.replace('endpoint = "http://b"\n', 'endpoint = "http://b"\ntoken = "tb"\n'),
  ],
  [
    "a new server is appended; default-server replaced with its comment kept",
    USER_FILE,
    both(login("c+1", "http://c", 'q"uote\\back\nline'), setDefault("c+1")),
    USER_FILE.replace('default-server = "a"', 'default-server = "c+1"') +
      '\n[servers."c+1"]\nendpoint = "http://c"\ntoken = "q\\"uote\\\\back\\nline"\n',
  ],
  [
    "a token replaces token-file",
    'default-server = "a"\n[servers.a]\nendpoint = "A"\n  token-file = "/run/t" # from sops\nextra = true\n',
    login("a", "A", "T"),
    'default-server = "a"\n[servers.a]\nendpoint = "A"\n  token = "T"\nextra = true\n',
  ],
  [
    "default-server goes above the comment block of the first table when there are no root keys",
    "# header\n\n# about a\n[servers.a]\nendpoint = \"A\"\n",
    setDefault("a"),
    '# header\n\ndefault-server = "a"\n\n# about a\n[servers.a]\nendpoint = "A"\n',
  ],
  [
    "an empty file gets upstream's layout",
    "",
    login("local", "http://x", "secret"),
    'default-server = "local"\n\n[servers.local]\nendpoint = "http://x"\ntoken = "secret"\n',
  ],
  [
    "CRLF files stay CRLF (the first login also sets default-server)",
    '# c\r\n[servers.a]\r\nendpoint = "A"\r\ntoken = "old"\r\n',
    both(login("a", "A", "new"), login("b", "B")),
    'default-server = "a"\r\n\r\n# c\r\n[servers.a]\r\nendpoint = "A"\r\ntoken = "new"\r\n\r\n[servers.b]\r\nendpoint = "B"\r\n',
  ],
  [
    "a file without a final newline gets one",
    '[servers.a]\nendpoint = "A"\n[servers.b]\nendpoint = "B"',
    login("b", "B", "t"),
    '[servers.a]\nendpoint = "A"\n[servers.b]\nendpoint = "B"\ntoken = "t"\n',
  ],
  [
    "a new server beside inline tables under [servers] is appended",
    '[servers] # inline\na = { endpoint = "A" }\n',
    login("b", "B"),
    '[servers] # inline\na = { endpoint = "A" }\n\n[servers.b]\nendpoint = "B"\n',
  ],
];

for (const [name, before, change, after] of cases) {
  test(`config edit: ${name}`, () => {
    const config = parseConfig(before, "c");
    change(config);
    const out = editConfig(before, config);
    assert.equal(out, after);
    assert.deepEqual(parseConfig(out, "c"), config);
  });
}

test("config edit: what cannot be done in place is a full rewrite (inline table, removed server, multi-line string)", () => {
  const rewrites: [string, (c: ClientConfig) => void][] = [
    ['[servers]\na = { endpoint = "A" } # inline\n', login("a", "A", "t")],
    ['servers = { a = { endpoint = "A" } }\n', login("b", "B")],
    ['[servers.a]\nendpoint = "A"\n[servers.b]\nendpoint = "B"\n', (c) => void c.servers.delete("b")],
    ['[servers.a]\nendpoint = """A"""\n', login("a", "A2")],
    ['[servers.a]\nendpoint = """\nA"""\n[servers.b]\nendpoint = "B"\n', login("a", "A2")],
    ["[servers.a]\nendpoint = 'A'\nnote = '''\n[servers.a]\ntoken = \"x\"'''\n", login("a", "A", "t")],
  ];
  for (const [before, change] of rewrites) {
    const config = parseConfig(before, "c");
    change(config);
    const out = editConfig(before, config);
    assert.equal(out, serializeConfig(config), before);
    assert.deepEqual(parseConfig(out, "c"), config);
  }
});

test("config edit: saved atomically with mode 0600, comments kept", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attic-config-edit-"));
  const path = join(dir, "config.toml");
  await writeFile(path, USER_FILE);
  await chmod(path, 0o644);
  const config = parseConfig(USER_FILE, path);
  login("a", "http://a", "new")(config);
  await saveConfig(path, config);
  assert.equal(await readFile(path, "utf8"), USER_FILE.replace('token = "old"', 'token = "new"'));
  assert.equal((await stat(path)).mode & 0o777, 0o600);
});
