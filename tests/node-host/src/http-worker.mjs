// Runs the host's HTTP requests off the main thread, so the main thread can block on them: the
// plugin's `http.send` import is synchronous. Redirects are never followed; bodies are capped.
import { parentPort } from 'node:worker_threads';
import http from 'node:http';
import https from 'node:https';

function exchange({ method, url, headers, body, timeoutMs, maxBytes, ca }) {
  return new Promise((resolve) => {
    const lib = url.startsWith('https:') ? https : http;
    let settled = false;
    const finish = (result) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(result);
      }
    };
    const request = lib.request(url, { method, headers, ca, agent: false }, (response) => {
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
    request.on('error', (e) => {
      const tls = /CERT|SSL|TLS|self.signed|unable to verify/i.test(`${e.code} ${e.message}`);
      finish({ error: { tag: tls ? 'tls-failed' : 'connection-failed', val: `${url}: ${e.message}` } });
    });
    if (body) request.write(Buffer.from(body));
    request.end();
  });
}

parentPort.on('message', ({ port }) => {
  port.on('message', async ({ request, signal }) => {
    const result = await exchange(request);
    port.postMessage(result);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  });
});
