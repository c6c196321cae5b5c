// The egress cases of tests/conformance/egress.json, which every host runs: the providers are
// read as a config, and each case's request must be allowed or denied as the data says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { addressRefusal, authorize, namesLoopback, parseUrl } from '../src/egress.mjs';
import { readConfig } from '../src/host.mjs';

const TOKEN = 'conformance-egress-token-0123';

test('the egress rule decides every conformance case', () => {
  const data = JSON.parse(readFileSync(new URL('../../conformance/egress.json', import.meta.url), 'utf8'));
  const config = readConfig({
    identity_providers: data.providers.map((p) => ({ name: p.name, base_url: p.base_url, restricted_group: 'G', token_env: 'EGRESS_TOKEN' })),
  }, { EGRESS_TOKEN: TOKEN });
  const endpoints = config.providers.map((p) => ({ name: p.name, base: p.base, token: p.token }));
  const wrong = [];
  for (const item of data.cases) {
    let allowed = true;
    try {
      authorize(endpoints, item.idp, item.url, item.headers ?? []);
    } catch (denied) {
      assert.ok(!denied.message.includes(TOKEN), denied.message);
      allowed = false;
    }
    if (allowed !== item.allowed) wrong.push(`${item.idp} ${item.url} (${item.about})`);
  }
  assert.ok(data.cases.length >= 40);
  assert.deepEqual(wrong, []);
});

test('the address rule decides every conformance case', () => {
  const data = JSON.parse(readFileSync(new URL('../../conformance/egress.json', import.meta.url), 'utf8'));
  const wrong = [];
  for (const item of data.addresses) {
    const base = parseUrl(item.base_url);
    const rules = { loopbackBase: namesLoopback(base), allowPrivateNetwork: item.allow_private_network ?? false, plainHttp: base.scheme === 'http' };
    const refusal = addressRefusal(item.address, rules);
    if (refusal !== (item.allowed ? null : item.refusal)) wrong.push(`${item.address} ${item.base_url}: ${refusal} (${item.about})`);
  }
  assert.ok(data.addresses.length >= 25);
  assert.deepEqual(wrong, []);
});
