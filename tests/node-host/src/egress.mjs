// The egress rule, as the reference host applies it: a request reaches the network only when it
// names a configured provider and its URL lies under that provider's base URL (same scheme, host
// and port; path inside the base path on a segment boundary; no '.' or '..' segments, raw or
// percent-encoded). Only then does it get that provider's token.

export const FORBIDDEN_HEADERS = [
  'authorization', 'host', 'content-length', 'transfer-encoding', 'cookie', 'proxy-authorization', 'connection',
  'upgrade', 'expect', 'te', 'trailer', 'keep-alive', 'proxy-connection', 'http2-settings',
];

const DEFAULT_PORTS = { http: 80, https: 443 };

/** Parses an absolute http(s) URL strictly; throws an Error saying what is wrong. */
export function parseUrl(text) {
  if (/[\u0000-\u0020\u007f-\uffff]/.test(text)) throw new Error(`${text} contains a space, control or non-ASCII character`);
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(text);
  if (!match) throw new Error(`${text} is not an absolute URL`);
  const [, rawScheme, authority, rawPath, query, fragment] = match;
  const scheme = rawScheme.toLowerCase();
  if (!(scheme in DEFAULT_PORTS)) throw new Error(`${text} has scheme ${scheme}; only http and https`);
  if (fragment !== undefined) throw new Error(`${text} has a fragment`);
  if (authority.includes('@')) throw new Error(`${text} carries user info`);
  const hostPort = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(authority);
  if (!hostPort) throw new Error(`${text} has an invalid host`);
  const port = hostPort[2] === undefined ? DEFAULT_PORTS[scheme] : Number(hostPort[2]);
  if (port < 1 || port > 65535) throw new Error(`${text} has an invalid port`);
  if (/%(?![0-9A-Fa-f]{2})/.test(rawPath + (query ?? ''))) throw new Error(`${text} has a stray '%'`);
  return { scheme, host: hostPort[1].toLowerCase().replace(/\.$/, ''), port, path: rawPath || '/', query: query ?? '' };
}

function percentDecode(bytes) {
  const out = [];
  for (let i = 0; i < bytes.length; i += 1) {
    const hex = bytes[i] === 0x25 && i + 2 < bytes.length ? String.fromCharCode(bytes[i + 1], bytes[i + 2]) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(bytes[i]);
    }
  }
  return out;
}

/** Whether bytes hold '.', '/' or '\' in an overlong UTF-8 form, which lenient decoders accept. */
function hasOverlongSeparator(bytes) {
  return bytes.some((lead, start) => {
    const length = lead >= 0xc0 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf7 ? 4 : 0;
    const continuation = bytes.slice(start + 1, start + length);
    if (length === 0 || continuation.length !== length - 1 || !continuation.every((b) => b >= 0x80 && b < 0xc0)) return false;
    const code = continuation.reduce((value, b) => (value << 6) | (b & 0x3f), lead & (0x7f >> length));
    return code === 0x2e || code === 0x2f || code === 0x5c;
  });
}

/**
 * What some server could read as another path (the reference host's rule): backslashes, ';'
 * parameters ('..;/'), '.' or '..' segments, and any percent-encoded '.', '/' or '\', however
 * many times encoded and in overlong UTF-8; null when there is none.
 */
export function pathProblem(path) {
  if (path.includes('\\')) return 'a backslash';
  if (path.includes(';')) return "a ';' parameter, which some servers strip ('..;/')";
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) return "'.' or '..' segments";
  const separators = (bytes) => bytes.filter((b) => b === 0x2e || b === 0x2f || b === 0x5c).length;
  let layer = [...Buffer.from(path, 'latin1')];
  for (let round = 0; round < 4; round += 1) {
    const decoded = percentDecode(layer);
    if (decoded.length === layer.length && decoded.every((b, i) => b === layer[i])) return null;
    if (separators(decoded) > separators(layer) || hasOverlongSeparator(decoded)) return 'a percent-encoded separator';
    layer = decoded;
  }
  return 'a percent-encoded separator';
}

export function isUnder(base, url) {
  if (base.scheme !== url.scheme || base.host !== url.host || base.port !== url.port) return false;
  const basePath = base.path.replace(/\/+$/, '');
  if (!url.path.startsWith(basePath)) return false;
  const rest = url.path.slice(basePath.length);
  return rest === '' || rest.startsWith('/');
}

/**
 * @param {{name: string, base: object, token: string}[]} endpoints
 * @returns {{url: object, token: string}} or throws an Error whose message says why it is denied
 */
export function authorize(endpoints, idp, urlText, headers) {
  const endpoint = endpoints.find((e) => e.name === idp);
  if (!endpoint) throw new Error(`no identity provider named "${idp}" is configured`);
  const url = parseUrl(urlText);
  const port = url.port === DEFAULT_PORTS[url.scheme] ? '' : `:${url.port}`;
  if (`${url.scheme}://${url.host}${port}${url.path}${url.query}` !== urlText) {
    throw new Error(`the URL ${urlText} is not written exactly as it would be sent`);
  }
  const problem = pathProblem(url.path);
  if (problem) throw new Error(`the path of ${urlText} has ${problem}`);
  if (!isUnder(endpoint.base, url)) throw new Error(`${urlText} is not under the base URL of "${endpoint.name}"`);
  for (const [name, value] of headers) {
    if (FORBIDDEN_HEADERS.includes(name.toLowerCase())) throw new Error(`the plugin may not set the ${name} header`);
    if (!/^[!-9;-~]+$/.test(name) || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
      throw new Error(`the header ${name} is malformed`);
    }
  }
  return { url, token: endpoint.token };
}
