// The conformance scenarios (tests/conformance/scenarios/*.json) through the Node host's API:
// those that need no config loader or command line (every scenario that lists no `hosts`). Each
// seeds its own simulator and must give the expected document (all but `message` and `detail`)
// and the expected members on the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlugin, NodeHost, readConfig } from '../src/host.mjs';
import { spawnSimulator } from '../support/simulator.mjs';

const TOKEN = 'tok-NODELEAK-conformance-7d2';
const WRONG_TOKEN = 'tok-NODELEAK-conformance-wrong';
const GROUP = 'ZPA Restricted Users';
const FOLDER = new URL('../../conformance/scenarios/', import.meta.url);
const need = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run the tests with bash scripts/test.sh`);
  return value;
};

const scenarios = readdirSync(FOLDER).filter((name) => name.endsWith('.json')).sort()
  .map((name) => JSON.parse(readFileSync(new URL(name, FOLDER), 'utf8')))
  .filter((scenario) => (scenario.hosts ?? ['node']).includes('node'));

function comparable(value) {
  if (Array.isArray(value)) return value.map(comparable);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'message' && key !== 'detail')
      .map(([key, item]) => [key, comparable(item)]));
  }
  return value;
}

async function startSimulator(scenario) {
  const setup = scenario.simulator ?? {};
  const args = ['--generate-users', String(setup.users ?? 5), '--generate-members', String(setup.members ?? 0)];
  if (scenario.seed) {
    const seed = join(mkdtempSync(join(tmpdir(), 'soar-node-conformance-')), 'seed.json');
    writeFileSync(seed, JSON.stringify(scenario.seed));
    args.push('--seed', seed);
  }
  for (const quirk of setup.quirks ?? []) args.push('--quirk', quirk);
  for (const fault of setup.faults ?? []) args.push('--fault', fault);
  return spawnSimulator(args, TOKEN);
}

async function memberNames(baseUrl) {
  const read = async (path) => (await fetch(`${baseUrl}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
  const group = (await read('/Groups?count=1000')).Resources.find((g) => g.displayName === GROUP);
  const names = await Promise.all((group.members ?? []).map(async (m) => (await read(`/Users/${m.value}`)).userName));
  return names.sort();
}

/** The command line a scenario gives, as the Node host's API call. */
function call(host, args) {
  const [command, ...rest] = args;
  const users = [];
  let dryRun = false;
  for (let i = 0; i < rest.length; i += 1) {
    if (rest[i] === '--user') users.push(rest[(i += 1)]);
    else if (rest[i] === '--dry-run') dryRun = true;
    else throw new Error(`the Node host has no option ${rest[i]}: list the scenario's hosts without node`);
  }
  switch (command) {
    case 'test-connection': return host.testConnection();
    case 'add-to-group': return host.addToGroup(users, { dryRun });
    case 'remove-from-group': return host.removeFromGroup(users, { dryRun });
    case 'check-membership': return host.checkMembership(users);
    default: throw new Error(`unknown command ${command}`);
  }
}

test('the scenarios are there', () => assert.ok(scenarios.length >= 20, `${scenarios.length} scenarios for node`));

for (const scenario of scenarios) {
  test(`conformance: ${scenario.name}`, async () => {
    const plugin = await loadPlugin(need('SOAR_PLUGIN'));
    const simulator = await startSimulator(scenario);
    try {
      const token = scenario.token === 'wrong' ? WRONG_TOKEN : TOKEN;
      const config = readConfig({
        allow_http: true,
        identity_providers: [{ name: 'zpa', base_url: simulator.baseUrl, restricted_group: GROUP, token_env: 'CONFORMANCE_TOKEN', ...scenario.provider }],
        ...scenario.config,
      }, { CONFORMANCE_TOKEN: token });
      const logs = [];
      const host = new NodeHost(plugin, config, { onLog: (line) => logs.push(line) });
      try {
        const document = call(host, scenario.args);
        assert.deepEqual(comparable(document), comparable(scenario.document));
        assert.equal({ success: 0, partial: 3, failed: 1 }[document.status], scenario.exit_code);
        assert.ok(!JSON.stringify([document, logs]).includes(token), 'the token is in the output');
      } finally {
        await host.close();
      }
      if (scenario.members_after) assert.deepEqual(await memberNames(simulator.baseUrl), [...scenario.members_after].sort());
    } finally {
      simulator.child.kill();
    }
  });
}
