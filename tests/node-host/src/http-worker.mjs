// Runs the host's HTTP requests off the main thread, so the main thread can block on them: the
// plugin's `http.send` and `http.send-all` imports are synchronous. Redirects are never followed;
// bodies are capped; a batch runs concurrently, bounded per provider.
import { parentPort } from 'node:worker_threads';
import http from 'node:http';
import https from 'node:https';

function exchange({ method, url, headers, body, timeoutMs, maxBytes, ca }) {
  let reached = false;
  return new Promise((resolve) => {
    const lib = url.startsWith('https:') ? https : http;
    let settled = false;
    const finish = (result) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve({ ...result, reached });
      }
    };
    const request = lib.request(url, { method, headers, ca, agent: false }, (response) => {
      reached = true;
      const chunks = [];
      let size = 0;
      response.on('data', (chunk) => {
        size += chunk.length;
        if (size > maxBytes) {
          request.destroy();
          finish({ error: { tag: 'too-large', val: `the answer from ${url} is larger than ${maxBytes} bytes` } });
        } else {
          chunks.push(chunk);
        }
      });
      response.on('end', () => finish({
        status: response.statusCode,
        headers: Object.entries(response.headers).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => [k, String(x)])),
        body: new Uint8Array(Buffer.concat(chunks)),
      }));
      response.on('error', (e) => finish({ error: { tag: 'connection-failed', val: `${url}: ${e.message}` } }));
    });
    const timer = setTimeout(() => {
      request.destroy();
      finish({ error: { tag: 'timeout', val: `${url}: no complete answer in ${timeoutMs} ms` } });
    }, timeoutMs);
    // Counted once a connection (TLS included) carries the request: as the Rust host counts.
    const connected = url.startsWith('https:') ? 'secureConnect' : 'connect';
    request.on('socket', (socket) => socket.once(connected, () => { reached = true; }));
    request.on('error', (e) => {
      const tls = /CERT|SSL|TLS|self.signed|unable to verify/i.test(`${e.code} ${e.message}`);
      finish({ error: { tag: tls ? 'tls-failed' : 'connection-failed', val: `${url}: ${e.message}` } });
    });
    if (body) request.write(Buffer.from(body));
    request.end();
  });
}

/** Runs the requests, at most `limit` at a time per `group` (provider); answers in order. */
async function exchangeAll(requests) {
  const answers = new Array(requests.length);
  const groups = new Map();
  requests.forEach((request, index) => {
    if (!groups.has(request.group)) groups.set(request.group, []);
    groups.get(request.group).push(index);
  });
  await Promise.all([...groups.values()].map(async (indices) => {
    const limit = Math.max(1, requests[indices[0]].limit);
    let next = 0;
    const worker = async () => {
      while (next < indices.length) {
        const index = indices[next++];
        answers[index] = await exchange(requests[index]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, indices.length) }, worker));
  }));
  return answers;
}

parentPort.on('message', ({ port }) => {
  port.on('message', async ({ requests, signal }) => {
    const results = await exchangeAll(requests);
    port.postMessage(results);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  });
});
