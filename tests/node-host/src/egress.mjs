// The egress rule, as the reference host applies it: a request reaches the network only when it
// names a configured provider and its URL lies under that provider's base URL (same scheme, host
// and port; path inside the base path on a segment boundary; no '.' or '..' segments, raw or
// percent-encoded). Only then does it get that provider's token.

import net from 'node:net';

// The headers a plugin may set (the reference host's allowlist): everything else is the host's or
// could re-route a request (X-Original-URL, X-HTTP-Method-Override, Forwarded, ...).
export const ALLOWED_HEADERS = ['accept', 'content-type', 'if-match', 'if-none-match'];

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
    if (decoded.length === layer.length && decoded.every((b, i) => b === layer[i])) {
      return normalisesToAscii(decoded) ? 'a character Unicode normalisation turns into ASCII' : null;
    }
    if (separators(decoded) > separators(layer) || hasOverlongSeparator(decoded)) return 'a percent-encoded separator';
    layer = decoded;
  }
  return 'a percent-encoded separator';
}

/** Whether decoded bytes hold a non-ASCII character that NFKC turns into ASCII ('．' into '.'). */
function normalisesToAscii(bytes) {
  const text = new TextDecoder().decode(Uint8Array.from(bytes));
  return [...text].some((c) => c.codePointAt(0) > 0x7f && /[\x00-\x7f]/.test(c.normalize('NFKC')));
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
    if (!ALLOWED_HEADERS.includes(name.toLowerCase())) throw new Error(`the plugin may not set the ${name} header`);
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
      throw new Error(`the header ${name} is malformed`);
    }
  }
  return { url, token: endpoint.token };
}

// The address rule (the reference host decides it in host/policy from the IANA special-purpose
// registries): which addresses a provider's resolved name may be reached at. Blocks as the
// registries list them, checked with node's own BlockList.
const blocks = (list) => {
  const blockList = new net.BlockList();
  for (const cidr of list) {
    const [address, prefix] = cidr.split('/');
    blockList.addSubnet(address, Number(prefix), address.includes(':') ? 'ipv6' : 'ipv4');
  }
  return blockList;
};
const LOOPBACK = blocks(['127.0.0.0/8', '::1/128']);
const PRIVATE = blocks(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);
const ALWAYS_REFUSED = [
  ['link-local', blocks(['169.254.0.0/16', 'fe80::/10'])],
  ['multicast', blocks(['224.0.0.0/4', 'ff00::/8'])],
  ['broadcast', blocks(['255.255.255.255/32'])],
  ['unspecified', blocks(['0.0.0.0/32', '::/128'])],
  ['documentation', blocks(['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8::/32', '3fff::/20'])],
  ['benchmarking', blocks(['198.18.0.0/15', '2001:2::/48'])],
  ['special-purpose', blocks(['0.0.0.0/8', '192.0.0.0/24', '192.88.99.0/24', '240.0.0.0/4', '100::/64', '2001::/23', '2002::/16'])],
];

/** An IPv4-mapped or NAT64 (64:ff9b::/96) address as the IPv4 address it carries. */
function canonicalAddress(address) {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  const nat64 = /^64:ff9b::([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (nat64) {
    const [high, low] = [parseInt(nat64[1], 16), parseInt(nat64[2], 16)];
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
  }
  return address;
}

/**
 * Why `address` may not be reached (the conformance data's kind), or null.
 * @param {{loopbackBase: boolean, allowPrivateNetwork: boolean, plainHttp: boolean}} rules
 */
export function addressRefusal(address, rules) {
  const ip = canonicalAddress(address);
  const family = net.isIPv6(ip) ? 'ipv6' : 'ipv4';
  const loopback = LOOPBACK.check(ip, family);
  if (rules.plainHttp && !loopback) return 'plain-http-not-loopback';
  if (loopback) return rules.loopbackBase ? null : 'loopback';
  if (PRIVATE.check(ip, family)) return rules.allowPrivateNetwork ? null : 'private-network';
  const refused = ALWAYS_REFUSED.find(([, blockList]) => blockList.check(ip, family));
  return refused ? refused[0] : null;
}

/** Whether a parsed base URL names loopback (localhost, *.localhost, 127.0.0.0/8, ::1). */
export function namesLoopback(base) {
  const host = base.host.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.endsWith('.localhost') || (net.isIP(host) !== 0 && LOOPBACK.check(host, net.isIPv6(host) ? 'ipv6' : 'ipv4'));
}
