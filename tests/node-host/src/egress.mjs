// The egress rule, as the reference host applies it: a request reaches the network only when it
// names a configured provider and its URL lies under that provider's base URL (same scheme, host
// and port; path inside the base path on a segment boundary; no '.' or '..' segments, raw or
// percent-encoded). Only then does it get that provider's token.

export const FORBIDDEN_HEADERS = [
  'authorization', 'host', 'content-length', 'transfer-encoding', 'cookie', 'proxy-authorization', 'connection',
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

function percentDecode(text) {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** Whether a path holds '.' or '..' segments, however many times percent-encoded. */
export function hasDotSegments(path) {
  let current = path;
  for (let round = 0; round < 4; round += 1) {
    if (current.split(/[/\\]/).some((segment) => segment === '.' || segment === '..')) return true;
    const decoded = percentDecode(current);
    if (decoded === current) return false;
    current = decoded;
  }
  return true;
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
  if (hasDotSegments(url.path)) throw new Error(`the path of ${urlText} has '.' or '..' segments`);
  if (!isUnder(endpoint.base, url)) throw new Error(`${urlText} is not under the base URL of "${endpoint.name}"`);
  for (const [name, value] of headers) {
    if (FORBIDDEN_HEADERS.includes(name.toLowerCase())) throw new Error(`the plugin may not set the ${name} header`);
    if (!/^[!-9;-~]+$/.test(name) || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
      throw new Error(`the header ${name} is malformed`);
    }
  }
  return { url, token: endpoint.token };
}
