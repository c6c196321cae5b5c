// A second host for the restricted-group plugin, in Node.js: the same .wasm, transpiled by jco,
// the imports implemented here with the reference host's credential and egress rule. It proves
// the component runs in any component-model host, and shows what a platform in another language
// must provide: `http.send` (policed, token attached by the host), `log.write`, `wait.sleep`, and
// WASI with nothing behind it.
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { authorize, parseUrl } from './egress.mjs';
import { ALLOWED_IMPORTS, emptyWasi } from './wasi.mjs';

const WIT_PREFIX = 'soar:restricted-group/';

/** Transpiles a component (cached by its hash) after checking its imports. */
export async function loadPlugin(wasmPath) {
  const bytes = readFileSync(wasmPath);
  const hash = createHash('sha256').update(bytes).digest('hex');
  const { files, imports, exports } = await transpileBytes(bytes, { name: 'plugin', instantiation: 'sync', outDir: '' });
  const refused = imports.map((name) => name.split('@')[0]).filter((name) => !ALLOWED_IMPORTS.includes(name));
  if (refused.length > 0) {
    throw new Error(`plugin ${wasmPath}: imports ${refused.join(', ')}, which this host does not provide`);
  }
  const actions = exports.map(([name]) => name).find((name) => name.startsWith(`${WIT_PREFIX}actions@1.`));
  if (!actions) {
    throw new Error(`plugin ${wasmPath}: does not export ${WIT_PREFIX}actions@1.x`);
  }
  const dir = transpileFolder(hash);
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // What is there is used only when it is exactly what was just transpiled, in a trusted folder.
    let current = null;
    try {
      current = trusted(lstatSync(path), 'file') ? readFileSync(path) : null;
    } catch {
      current = null;
    }
    if (current === null || !Buffer.from(content).equals(current)) {
      writeFileSync(path, content, { mode: 0o600 });
    }
  }
  const generated = await import(pathToFileURL(join(dir, 'plugin.js')).href);
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) modules.set(name, new WebAssembly.Module(readFileSync(join(dir, name))));
    return modules.get(name);
  };
  // jco binds imports by unversioned name, so one set of host functions serves 1.0 and 1.1 plugins.
  return { witVersion: actions.split('@')[1], instantiate: (imports) => generated.instantiate(getCoreModule, imports) };
}

/** Owned by this user and not writable by group or others (its parents are not checked). */
function trusted(stats, kind) {
  const right = kind === 'dir' ? stats.isDirectory() : stats.isFile();
  return right && stats.uid === process.getuid() && (stats.mode & 0o022) === 0;
}

/**
 * The folder transpiled code is loaded from: the shared one for this component when this user
 * owns it and no one else can write it (created owner-only), else a fresh private folder, as the
 * Rust host treats its compile cache.
 */
function transpileFolder(hash) {
  const shared = join(tmpdir(), `soar-node-host-${hash.slice(0, 16)}`);
  try {
    mkdirSync(shared, { recursive: true, mode: 0o700 });
    if (trusted(lstatSync(shared), 'dir')) return shared;
  } catch {
    // Fall through to a private folder.
  }
  console.warn(`soar-node-host: ${shared} is not owner-only; transpiling into a private folder`);
  return mkdtempSync(join(tmpdir(), 'soar-node-host-private-'));
}

/** Synchronous HTTP for the plugin: a worker does the request while this thread waits. */
class SyncHttp {
  constructor() {
    this.worker = new Worker(new URL('./http-worker.mjs', import.meta.url));
    this.worker.unref();
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker.postMessage({ port: port2 }, [port2]);
  }

  /** Runs the requests (each with `limit`, its provider's concurrency) and waits for all answers. */
  requestAll(requests) {
    if (requests.length === 0) return [];
    const signal = new Int32Array(new SharedArrayBuffer(4));
    this.port.postMessage({ requests, signal });
    Atomics.wait(signal, 0, 0, Math.max(...requests.map((r) => r.timeoutMs)) + 5_000);
    const received = receiveMessageOnPort(this.port);
    const lost = { error: { tag: 'timeout', val: 'the HTTP worker did not answer' } };
    return received ? received.message : requests.map(() => lost);
  }

  close() {
    this.port.close();
    return this.worker.terminate();
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function parseUser(text) {
  if (text.startsWith('id:')) return { tag: 'id', val: text.slice(3) };
  if (text.startsWith('external:')) return { tag: 'external', val: text.slice(9) };
  return { tag: 'email', val: text };
}

/** A config in the reference host's format (a subset); tokens come from `env`. */
export function readConfig(config, env) {
  if (!Array.isArray(config.identity_providers) || config.identity_providers.length === 0) {
    throw new Error('identity_providers must list at least one provider');
  }
  const providers = config.identity_providers.map((p) => {
    const base = parseUrl(p.base_url);
    if (base.scheme === 'http' && !(config.allow_http && ['127.0.0.1', 'localhost', '[::1]'].includes(base.host))) {
      throw new Error(`${p.name}: plain http needs allow_http and a loopback host`);
    }
    const token = env[p.token_env];
    if (!token) throw new Error(`${p.name}: token_env ${p.token_env} is not set`);
    return { ...p, base, token };
  });
  return {
    providers,
    deadlineMs: config.deadline_ms ?? 60_000,
    retryAfterCapMs: config.retry_after_cap_ms ?? 60_000,
    maxResponseBytes: config.max_response_bytes ?? 8 * 1024 * 1024,
    protectedUsers: (config.protected_users ?? []).map(parseUser),
  };
}

/** Runs actions: a fresh instance per call, every request policed. */
export class NodeHost {
  constructor(plugin, config, { onLog = () => {} } = {}) {
    this.plugin = plugin;
    this.config = config;
    this.onLog = onLog;
    this.http = new SyncHttp();
  }

  close() {
    return this.http.close();
  }

  #settings() {
    return {
      providers: this.config.providers.map((p) => ({
        name: p.name,
        baseUrl: p.base_url,
        restrictedGroup: p.restricted_group,
        restrictedGroupId: p.restricted_group_id,
        profile: p.profile ?? 'generic',
        maxRetries: p.max_retries ?? 4,
      })),
      retryAfterCapMs: BigInt(this.config.retryAfterCapMs),
    };
  }

  #run(action, call, dryRun = false) {
    const deadline = Date.now() + this.config.deadlineMs;
    const endpoints = this.config.providers.map((p) => ({ name: p.name, base: p.base, token: p.token }));
    const secrets = endpoints.map((e) => e.token);
    const redact = (text) => secrets.reduce((t, s) => t.split(s).join('<redacted>'), text);
    let httpRequests = 0;
    // Each request passes the egress rule alone and gets its provider's token; then the batch
    // goes out together, at most `max_concurrent_requests` at a time per provider. Each comes
    // with its purpose (why it is sent), which this host does not log.
    const sendAll = (requests) => {
      const answers = new Array(requests.length);
      const outgoing = [];
      requests.forEach(([request], index) => {
        let authorized;
        try {
          authorized = authorize(endpoints, request.idp, request.url, request.headers);
        } catch (denied) {
          answers[index] = { tag: 'err', val: { tag: 'denied', val: redact(denied.message) } };
          return;
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          answers[index] = { tag: 'err', val: { tag: 'timeout', val: "the action's deadline has passed" } };
          return;
        }
        const provider = this.config.providers.find((p) => p.name === request.idp);
        outgoing.push({ index, token: authorized.token, request: {
          method: request.method.toUpperCase(),
          url: request.url,
          headers: Object.fromEntries([...request.headers, ['Authorization', `Bearer ${authorized.token}`]]),
          body: request.body,
          timeoutMs: remaining,
          maxBytes: this.config.maxResponseBytes,
          group: request.idp,
          limit: provider?.max_concurrent_requests ?? 4,
        } });
      });
      const results = this.http.requestAll(outgoing.map((o) => o.request));
      outgoing.forEach(({ index, token }, n) => {
        const answer = results[n];
        if (answer.reached) httpRequests += 1;
        if (answer.error) {
          answers[index] = { tag: 'err', val: { tag: answer.error.tag, val: redact(answer.error.val) } };
          return;
        }
        const body = Buffer.from(answer.body);
        const scrubbed = body.includes(token) ? Buffer.from(redact(body.toString('utf8'))) : body;
        answers[index] = { tag: 'ok', val: { status: answer.status, headers: answer.headers.map(([k, v]) => [k, redact(v)]), body: new Uint8Array(scrubbed) } };
      });
      return answers;
    };
    const send = (request) => sendAll([[request, null]])[0];
    const own = {
      http: { send, sendAll },
      log: { write: (level, message) => this.onLog({ level, message: redact(message) }) },
      wait: {
        sleep: (ms) => {
          const wanted = Number(ms);
          if (Date.now() + wanted > deadline) return false;
          sleepSync(wanted);
          return true;
        },
      },
      types: {},
    };
    const { imports, stderr } = emptyWasi();
    for (const [name, implementation] of Object.entries(own)) {
      imports[`${WIT_PREFIX}${name}`] = implementation;
    }
    try {
      const root = this.plugin.instantiate(imports);
      const result = call(root.actions);
      return document(action, result, httpRequests, redact, dryRun);
    } catch (trap) {
      const panic = /panicked at ([^\n]*)\n([^\n]*)/.exec(stderr.text());
      const message = panic ? `the plugin panicked: ${panic[2]} (at ${panic[1]})` : `the plugin trapped: ${trap.message}`;
      return { schema_version: 1, action, status: 'failed', http_requests: httpRequests, error: { kind: panic ? 'plugin-panicked' : 'plugin-trapped', message: redact(message) } };
    }
  }

  testConnection() {
    return this.#run('test-connection', (actions) => actions.testConnection(this.#settings()));
  }

  #membership(action, method, users, dryRun) {
    const request = { settings: this.#settings(), users: users.map(parseUser), dryRun, protected: this.config.protectedUsers };
    return this.#run(action, (actions) => actions[method](request), dryRun);
  }

  addToGroup(users, { dryRun = false } = {}) {
    return this.#membership('add-to-group', 'addToGroup', users, dryRun);
  }

  removeFromGroup(users, { dryRun = false } = {}) {
    return this.#membership('remove-from-group', 'removeFromGroup', users, dryRun);
  }

  checkMembership(users) {
    return this.#membership('check-membership', 'checkMembership', users, false);
  }
}

/** The plugin's result as the reference host prints it (snake_case, numbers, nulls); this host
 * takes no correlation id. */
function document(action, result, httpRequests, redact, dryRun) {
  const text = (value) => (value === undefined ? null : redact(value));
  const error = (e) => e && {
    kind: e.kind,
    message: redact(e.message),
    ...(e.status !== undefined && { status: e.status }),
    ...(e.detail !== undefined && { detail: redact(e.detail) }),
    ...(e.retryAfterMs !== undefined && { retry_after_ms: Number(e.retryAfterMs) }),
    ...(e.ids !== undefined && { ids: e.ids }),
  };
  return {
    schema_version: 1,
    action,
    status: result.status,
    dry_run: dryRun,
    correlation_id: null,
    http_requests: httpRequests,
    providers: result.providers.map((p) => ({
      idp: p.idp,
      group: p.group ? { display_name: text(p.group.displayName), id: text(p.group.id) } : null,
      outcome: p.outcome ?? null,
      error: error(p.error) ?? null,
      users: p.users.map((u) => ({
        user: u.user,
        user_id: text(u.userId),
        outcome: u.outcome ?? null,
        error: error(u.error) ?? null,
        membership_verified: u.membershipVerified,
      })),
    })),
  };
}
