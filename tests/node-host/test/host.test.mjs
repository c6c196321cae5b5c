// The Node host against the reference simulator (started as `soar-host simulator`): the same
// component, the same actions, the same egress rule, and a WASI shim that gives the guest nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlugin, NodeHost, readConfig } from '../src/host.mjs';
import { spawnSimulator } from '../support/simulator.mjs';

const TOKEN = 'tok-NODELEAK-41c9';
const GROUP = 'ZPA Restricted Users';
const need = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run the tests with bash scripts/test.sh`);
  return value;
};

async function startSimulator(quirks = []) {
  const dir = mkdtempSync(join(tmpdir(), 'soar-node-sim-'));
  const seed = join(dir, 'seed.json');
  writeFileSync(seed, JSON.stringify({
    users: [{ id: '7001', userName: 'alice@corp.example' }, { id: '7002', userName: 'bob@corp.example' }],
    groups: [{ id: '9001', displayName: GROUP, members: [] }],
  }));
  return spawnSimulator(['--seed', seed, ...quirks.flatMap((q) => ['--quirk', q])], TOKEN);
}

async function members(baseUrl) {
  const response = await fetch(`${baseUrl}/Groups/9001`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const group = await response.json();
  return (group.members ?? []).map((m) => m.value).sort();
}

function hostFor(plugin, baseUrl, restrictedGroup = GROUP, logs = []) {
  const config = readConfig({
    allow_http: true,
    identity_providers: [{ name: 'zpa', base_url: baseUrl, restricted_group: restrictedGroup, token_env: 'NODE_TOKEN', profile: 'zpa' }],
  }, { NODE_TOKEN: TOKEN });
  return new NodeHost(plugin, config, { onLog: (line) => logs.push(line) });
}

let simulator;
let plugin;
let hostile;
before(async () => {
  simulator = await startSimulator(['echo-authorization']);
  plugin = await loadPlugin(need('SOAR_PLUGIN'));
  hostile = await loadPlugin(join(need('SOAR_FIXTURES'), 'hostile-plain.wasm'));
});
after(() => simulator?.child.kill());

test('test-connection, add twice and remove change the server exactly', async () => {
  const host = hostFor(plugin, simulator.baseUrl);
  try {
    const connected = host.testConnection();
    assert.equal(connected.status, 'success');
    assert.equal(connected.providers[0].outcome, 'connected');
    assert.equal(connected.providers[0].group.id, '9001');

    const added = host.addToGroup(['alice@corp.example']);
    assert.equal(added.status, 'success', JSON.stringify(added));
    assert.equal(added.providers[0].users[0].outcome, 'added');
    assert.equal(added.http_requests, 3);
    assert.deepEqual(await members(simulator.baseUrl), ['7001']);

    assert.equal(host.addToGroup(['alice@corp.example']).providers[0].users[0].outcome, 'already-member');
    const dry = host.removeFromGroup(['alice@corp.example'], { dryRun: true });
    assert.equal(dry.providers[0].users[0].outcome, 'would-remove');
    assert.deepEqual(await members(simulator.baseUrl), ['7001']);

    const removed = host.removeFromGroup(['alice@corp.example', 'nobody@corp.example']);
    assert.equal(removed.status, 'partial');
    assert.equal(removed.providers[0].users[0].outcome, 'removed');
    assert.equal(removed.providers[0].users[1].error.kind, 'user-not-found');
    assert.deepEqual(await members(simulator.baseUrl), []);
    assert.ok(!JSON.stringify([connected, added, removed]).includes(TOKEN));
  } finally {
    await host.close();
  }
});

test('requests outside the base URL are denied and never sent', async () => {
  let connections = 0;
  const elsewhere = createServer((req, res) => res.end('{}')).on('connection', () => { connections += 1; });
  await new Promise((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
  const other = `http://127.0.0.1:${elsewhere.address().port}`;
  const base = simulator.baseUrl;
  try {
    for (const command of [
      `send zpa GET ${other}/scim/v2/Users`,
      `send zpa GET ${base}/../../x/v2/Users`,
      `send zpa GET ${base}/%2e%2e/x`,
      `send zpa GET ${base}evil/Users`,
      `send other GET ${base}/Users`,
      `send zpa GET ${base}/Users Authorization: Bearer stolen`,
      'send zpa GET http://169.254.169.254/latest/meta-data/',
    ]) {
      const host = hostFor(hostile, base, command);
      const result = host.testConnection();
      await host.close();
      assert.match(result.providers[0].error.message, /^denied: /, command);
      assert.equal(result.http_requests, 0, command);
    }
    assert.equal(connections, 0);
  } finally {
    elsewhere.close();
  }
});

test('a server echoing the token cannot hand it to the plugin', async () => {
  const host = hostFor(hostile, simulator.baseUrl, `send zpa GET ${simulator.baseUrl}/Users/404`);
  const result = host.testConnection();
  await host.close();
  const message = result.providers[0].error.message;
  assert.match(message, /^status 404/);
  assert.match(message, /Bearer <redacted>/);
  assert.ok(!message.includes(TOKEN));
});

test('the shim gives the guest no environment, arguments or input', async () => {
  process.env.NODE_TOKEN_IN_ENV = TOKEN;
  for (const [command, expected] of [['env', 'env [] args []'], ['stdin', 'stdin Ok(0) ""']]) {
    const host = hostFor(hostile, simulator.baseUrl, command);
    const result = host.testConnection();
    await host.close();
    assert.equal(result.providers[0].error.message, expected);
  }
});

test('no preopened folders and no sockets: components that import them are refused', async () => {
  for (const [variant, expected] of [['filesystem', /wasi:filesystem\//], ['sockets', /wasi:sockets\//], ['clock', /wasi:clocks\//]]) {
    await assert.rejects(loadPlugin(join(need('SOAR_FIXTURES'), `hostile-${variant}.wasm`)), expected);
  }
});

test('a panic costs one call and carries its message', async () => {
  const host = hostFor(hostile, simulator.baseUrl, 'panic out of cheese');
  const result = host.testConnection();
  await host.close();
  assert.equal(result.status, 'failed');
  assert.equal(result.error.kind, 'plugin-panicked');
  assert.match(result.error.message, /out of cheese/);
  const again = hostFor(plugin, simulator.baseUrl);
  assert.equal(again.testConnection().status, 'success');
  await again.close();
});

test('transpiled code is never loaded from a folder others can write', async () => {
  const hash = createHash('sha256').update(readFileSync(need('SOAR_PLUGIN'))).digest('hex');
  const shared = join(tmpdir(), `soar-node-host-${hash.slice(0, 16)}`);
  rmSync(shared, { recursive: true, force: true });
  mkdirSync(shared, { recursive: true });
  writeFileSync(join(shared, 'plugin.js'), "throw new Error('planted code ran');");
  chmodSync(shared, 0o777);
  try {
    const loaded = await loadPlugin(need('SOAR_PLUGIN'));
    const host = hostFor(loaded, simulator.baseUrl);
    try {
      assert.equal(host.testConnection().providers[0].outcome, 'connected');
    } finally {
      await host.close();
    }
  } finally {
    rmSync(shared, { recursive: true, force: true });
  }
});

test('send-all: a batch goes out together and every user is changed once', async () => {
  const host = hostFor(plugin, simulator.baseUrl);
  try {
    const added = host.addToGroup(['alice@corp.example', 'bob@corp.example']);
    assert.equal(added.status, 'success', JSON.stringify(added));
    assert.equal(added.http_requests, 3, 'the group and both users looked up in one round, then one PATCH');
    assert.deepEqual(await members(simulator.baseUrl), ['7001', '7002']);
    const removed = host.removeFromGroup(['alice@corp.example', 'bob@corp.example']);
    assert.equal(removed.status, 'success', JSON.stringify(removed));
    assert.deepEqual(await members(simulator.baseUrl), []);
  } finally {
    await host.close();
  }
});

test('a component built for WIT 1.0 still runs', async () => {
  const legacy = await loadPlugin(join(need('SOAR_FIXTURES'), 'hostile-wit-1-0.wasm'));
  assert.equal(legacy.witVersion, '1.0.0');
  assert.equal(plugin.witVersion, '1.2.0');
  const host = hostFor(legacy, simulator.baseUrl, `send zpa GET ${simulator.baseUrl}/Users`);
  try {
    const result = host.testConnection();
    assert.match(result.providers[0].error.message, /^status 200/);
  } finally {
    await host.close();
  }
});
