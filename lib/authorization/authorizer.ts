import { MtlsConfigError } from '../errors/mtls.errors.js';
import { DNS_NAME_MAX_LENGTH, normalizeDnsName } from '../identity/dns-name.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { parseSpiffeId, parseTrustDomain, validateSpiffePathSegment } from '../identity/spiffe-id.js';

/*
 * go-spiffe's `tlsconfig.Authorizer` shape: small constructors that validate their arguments and build their sets
 * once, returning a function that runs per request. Every rule value is checked here, at startup, so a typo fails the
 * application instead of silently denying (or admitting) peers.
 */

/**
 * Decides whether a peer may proceed. Returns `undefined` to allow, or a short reason naming the offending value
 * (go-spiffe style: `unexpected ID "spiffe://…"`). Authorizers are built once and must be cheap per call:
 * sets and compiled patterns are made in the constructor functions, never per call.
 */
export interface Authorizer {
  (peer: PeerIdentity): string | undefined;
  /** Human-readable rule for logs, e.g. `one of [spiffe://shop.test/ns/shop/sa/orders]`. */
  readonly description: string;
}

const MAX_LISTED = 5;

/** Turns a fresh closure into a frozen {@link Authorizer}. */
function authorizer(description: string, check: (peer: PeerIdentity) => string | undefined): Authorizer {
  return Object.freeze(Object.assign(check, { description }));
}

function configError(message: string, cause?: unknown): MtlsConfigError {
  return new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', message, cause === undefined ? undefined : { cause });
}

/** JSON-quoted, so hostile certificate text cannot break a log line; long lists are cut. */
function quoteList(values: readonly string[]): string {
  const shown = values.slice(0, MAX_LISTED).map((v) => JSON.stringify(v));
  if (values.length > MAX_LISTED) shown.push(`… ${values.length - MAX_LISTED} more`);
  return `[${shown.join(', ')}]`;
}

function noSpiffeId(peer: PeerIdentity): string {
  return `peer has no SPIFFE ID (${peer.svidError ?? 'not an X509-SVID'})`;
}

function unexpectedId(id: string): string {
  return `unexpected ID ${JSON.stringify(id)}`;
}

function requireValues(constructor: string, values: readonly unknown[], what: string): void {
  if (values.length === 0) throw configError(`${constructor}() needs at least one ${what}`);
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw configError(`${what} must be a string, got ${value === null ? 'null' : typeof value}`);
  return value;
}

/**
 * Checks a rule's SPIFFE ID with go-spiffe's grammar and requires a workload path: `spiffe://td` alone is the trust
 * domain's own ID, which no X509-SVID leaf carries (X509-SVID §3.1), so a rule naming it could never match.
 */
export function checkRuleSpiffeId(value: unknown): string {
  const text = requireString(value, 'a SPIFFE ID');
  let path: string;
  let trustDomain: string;
  try {
    ({ path, trustDomain } = parseSpiffeId(text));
  } catch (err) {
    throw configError(`invalid SPIFFE ID ${JSON.stringify(text)}: ${(err as Error).message}`, err);
  }
  if (path === '') {
    throw configError(
      `SPIFFE ID ${JSON.stringify(text)} has no path: it names the trust domain, not a workload; ` +
        `to admit every workload of it use the trust domain "${trustDomain}"`,
    );
  }
  return text;
}

/**
 * Admits any authenticated peer (go-spiffe `AuthorizeAny`): its certificate chained to the trust bundle and gave an
 * identity. Leaves that can sign, invalid SVIDs and SVIDs outside their anchor's trust domain have none: they are
 * refused before any rule runs.
 */
export function authorizeAny(): Authorizer {
  return authorizer('any peer', () => undefined);
}

/** Denies every peer; `reason` says why (e.g. the route has no rule and the default policy is deny). */
export function authorizeNone(reason = 'no peer is allowed'): Authorizer {
  return authorizer('no peer', () => reason);
}

/** Admits exactly one SPIFFE ID (go-spiffe `AuthorizeID`). */
export function authorizeId(id: string): Authorizer {
  const allowed = checkRuleSpiffeId(id);
  return authorizer(`ID ${allowed}`, (peer) => {
    if (peer.spiffeId === undefined) return noSpiffeId(peer);
    return peer.spiffeId === allowed ? undefined : unexpectedId(peer.spiffeId);
  });
}

/** Admits any of the SPIFFE IDs (go-spiffe `AuthorizeOneOf`); the set is built once. */
export function authorizeOneOf(...ids: string[]): Authorizer {
  requireValues('authorizeOneOf', ids, 'SPIFFE ID');
  const allowed = new Set(ids.map(checkRuleSpiffeId));
  return authorizer(`one of [${[...allowed].join(', ')}]`, (peer) => {
    if (peer.spiffeId === undefined) return noSpiffeId(peer);
    return allowed.has(peer.spiffeId) ? undefined : unexpectedId(peer.spiffeId);
  });
}

/**
 * Admits any SPIFFE ID of the trust domains (go-spiffe `AuthorizeMemberOf`). Each value is a trust domain name or its
 * root ID `spiffe://td`; an ID with a path is refused, as it would silently widen a rule meant for one workload.
 */
export function authorizeMemberOf(...trustDomains: string[]): Authorizer {
  requireValues('authorizeMemberOf', trustDomains, 'trust domain');
  const allowed = new Set(trustDomains.map(checkTrustDomain));
  return authorizer(`member of [${[...allowed].join(', ')}]`, (peer) => {
    if (peer.spiffeId === undefined || peer.trustDomain === undefined) return noSpiffeId(peer);
    return allowed.has(peer.trustDomain) ? undefined : `unexpected trust domain ${JSON.stringify(peer.trustDomain)}`;
  });
}

function checkTrustDomain(value: unknown): string {
  const text = requireString(value, 'a trust domain');
  let trustDomain: string;
  try {
    trustDomain = parseTrustDomain(text);
  } catch (err) {
    throw configError(`invalid trust domain ${JSON.stringify(text)}: ${(err as Error).message}`, err);
  }
  if (text.includes(':/') && text !== `spiffe://${trustDomain}`) {
    throw configError(
      `trust domain ${JSON.stringify(text)} is a workload's SPIFFE ID; give the trust domain "${trustDomain}" ` +
        'to admit all of it, or the ID as a peer to admit that workload only',
    );
  }
  return trustDomain;
}

/** Marker for a `*` segment (exactly one whole segment). */
const ONE_SEGMENT = Symbol('*');
/** Marker for a trailing `**` (one or more segments). */
const SOME_SEGMENTS = Symbol('**');
type PatternSegment = string | typeof ONE_SEGMENT | typeof SOME_SEGMENTS;

/** True when `value` is written as a SPIFFE ID pattern rather than an ID. */
export function isSpiffePattern(value: string): boolean {
  return value.includes('*');
}

/**
 * Compiles a SPIFFE ID pattern into a matcher over valid SPIFFE IDs. The trust domain is literal; `*` stands for
 * exactly one whole path segment; a final `**` for one or more. Nothing else is special: no partial-segment globs, no
 * prefixes, so `…/sa/orders` never matches `…/sa/orders-evil` and `shop.test` never matches `shop.test.evil`.
 */
export function compileSpiffePattern(pattern: unknown): (id: string) => boolean {
  const text = requireString(pattern, 'a SPIFFE ID pattern');
  const quoted = JSON.stringify(text);
  if (!text.startsWith('spiffe://')) throw configError(`SPIFFE ID pattern ${quoted} must start with spiffe://`);
  const slash = text.indexOf('/', 'spiffe://'.length);
  const trustDomain = text.slice('spiffe://'.length, slash === -1 ? undefined : slash);
  if (trustDomain.includes('*')) {
    throw configError(`SPIFFE ID pattern ${quoted}: the trust domain must be literal; list each trust domain instead`);
  }
  try {
    parseTrustDomain(trustDomain);
  } catch (err) {
    throw configError(`SPIFFE ID pattern ${quoted}: ${(err as Error).message}`, err);
  }
  if (slash === -1)
    throw configError(`SPIFFE ID pattern ${quoted} has no path; to admit a whole trust domain, name the trust domain`);

  const rawSegments = text.slice(slash + 1).split('/');
  const segments: PatternSegment[] = rawSegments.map((segment, index) => {
    if (segment === '*') return ONE_SEGMENT;
    if (segment === '**') {
      if (index !== rawSegments.length - 1) throw configError(`SPIFFE ID pattern ${quoted}: "**" may only be the last segment`);
      return SOME_SEGMENTS;
    }
    if (segment.includes('*')) {
      throw configError(
        `SPIFFE ID pattern ${quoted}: "*" must be a whole path segment, as in /sa/*, not part of one ("${segment}")`,
      );
    }
    try {
      validateSpiffePathSegment(segment);
    } catch (err) {
      throw configError(`SPIFFE ID pattern ${quoted}: ${(err as Error).message}`, err);
    }
    return segment;
  });

  const prefix = `spiffe://${trustDomain}/`;
  if (!segments.some((s) => typeof s === 'symbol')) return (id) => id === text;
  return (id) => matchSegments(id, prefix, segments);
}

/** Walks a valid SPIFFE ID (no empty, dot or trailing segments) against compiled segments, without allocating. */
function matchSegments(id: string, prefix: string, segments: readonly PatternSegment[]): boolean {
  if (!id.startsWith(prefix)) return false;
  let start = prefix.length;
  const last = segments.length - 1;
  for (let i = 0; i <= last; i++) {
    const segment = segments[i]!;
    if (segment === SOME_SEGMENTS) return start < id.length;
    const slash = id.indexOf('/', start);
    const end = slash === -1 ? id.length : slash;
    if (end === start) return false;
    if (segment !== ONE_SEGMENT && (end - start !== segment.length || !id.startsWith(segment, start))) return false;
    if (i === last) return end === id.length;
    if (slash === -1) return false;
    start = slash + 1;
  }
  return false;
}

/**
 * Admits SPIFFE IDs matching a pattern such as `spiffe://shop.test/ns/shop/sa/*` or `spiffe://shop.test/ns/shop/**`
 * (see {@link compileSpiffePattern}).
 */
export function authorizeMatch(pattern: string): Authorizer {
  const matches = compileSpiffePattern(pattern);
  return authorizer(`match ${pattern}`, (peer) => {
    if (peer.spiffeId === undefined) return noSpiffeId(peer);
    return matches(peer.spiffeId) ? undefined : unexpectedId(peer.spiffeId);
  });
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Lower-cases a DNS rule and checks it: a host name (see `normalizeDnsName`), or `*.` and one with at least two labels. */
function checkDnsRule(value: unknown): { exact: string } | { suffix: string } {
  const text = requireString(value, 'a DNS name');
  if (NON_ASCII.test(text))
    throw configError(`DNS name rule ${JSON.stringify(text)} is not ASCII; give its A-label (xn--…) form`);
  const name = text.toLowerCase();
  const wildcard = name.startsWith('*.');
  const rest = wildcard ? name.slice(2) : name;
  const problem =
    name.length > DNS_NAME_MAX_LENGTH
      ? `longer than ${DNS_NAME_MAX_LENGTH} characters`
      : name.endsWith('.')
        ? 'has a trailing dot; remove it'
        : normalizeDnsName(rest) === undefined
          ? 'is not a DNS name (letters, digits, "-" and "_" in dot-separated labels of 1–63 characters; "*" only as "*.rest")'
          : wildcard && !rest.includes('.')
            ? 'is a wildcard over a top-level domain; give at least two labels after "*."'
            : undefined;
  if (problem !== undefined) throw configError(`DNS name rule ${JSON.stringify(text)} ${problem}`);
  return wildcard ? { suffix: name.slice(1) } : { exact: name };
}

/**
 * Admits a peer — a valid SVID or a legacy peer — with a DNS SAN equal to one of the names, ASCII case-insensitively.
 * `*.example.com` matches exactly one extra left-most label (`a.example.com`, not `example.com` nor `a.b.example.com`).
 * A peer's own wildcard SAN matches nothing: a wildcard certificate does not name one client. Compares the peer's
 * {@link PeerIdentity.normalizedDnsNames} (normalised once per identity): per request, only set lookups.
 */
export function authorizeDnsName(...names: string[]): Authorizer {
  requireValues('authorizeDnsName', names, 'DNS name');
  const exact = new Set<string>();
  // Each suffix keeps its leading dot (`.example.com`), so a match is one lookup of the name minus its first label.
  const suffixes = new Set<string>();
  for (const rule of names.map(checkDnsRule)) {
    if ('exact' in rule) exact.add(rule.exact);
    else suffixes.add(rule.suffix);
  }
  const description = `DNS name one of [${[...exact, ...[...suffixes].map((s) => `*${s}`)].join(', ')}]`;
  return authorizer(description, (peer) => {
    for (const name of peer.normalizedDnsNames) {
      if (exact.has(name)) return undefined;
      if (suffixes.size > 0) {
        // Normalised names have no empty label, so the first dot ends the left-most label.
        const dot = name.indexOf('.');
        if (dot > 0 && suffixes.has(name.slice(dot))) return undefined;
      }
    }
    return peer.dnsNames.length === 0 ? 'peer has no DNS SAN' : `unexpected DNS names ${quoteList(peer.dnsNames)}`;
  });
}

/**
 * Admits a legacy peer whose certificate has no subject alternative name at all, by its subject commonName, compared
 * exactly. A certificate with any SAN is identified by its SANs, never by its CN (RFC 6125 §6.4.4; san-injection
 * row 14): an SVID with `CN=orders` is not "orders". Only a subject with exactly one CN has a commonName (see
 * {@link PeerIdentity.commonName}), so a certificate cannot pick the CN a reader would see.
 */
export function authorizeCommonName(...names: string[]): Authorizer {
  requireValues('authorizeCommonName', names, 'common name');
  const allowed = new Set(
    names.map((name) => {
      const text = requireString(name, 'a common name');
      if (text === '') throw configError('common name rule is empty');
      return text;
    }),
  );
  return authorizer(`CN one of ${quoteList([...allowed])}`, (peer) => {
    if (peer.uris.length + peer.dnsNames.length + peer.ipAddresses.length + peer.emails.length > 0) {
      return 'peer certificate has subject alternative names, so its CN is not its identity';
    }
    if (peer.commonName === undefined) return 'peer has no single subject commonName';
    return allowed.has(peer.commonName) ? undefined : `unexpected CN ${JSON.stringify(peer.commonName)}`;
  });
}

/** Admits a peer that any of the authorizers admits, trying them in order; a denial lists each distinct reason. */
export function authorizeAnyOf(...authorizers: Authorizer[]): Authorizer {
  requireValues('authorizeAnyOf', authorizers, 'authorizer');
  for (const a of authorizers) {
    if (typeof a !== 'function' || typeof a.description !== 'string') {
      throw configError('authorizeAnyOf() takes authorizers made by the authorize… functions');
    }
  }
  if (authorizers.length === 1) return authorizers[0]!;
  const list = [...authorizers];
  return authorizer(`any of [${list.map((a) => a.description).join('; ')}]`, (peer) => {
    const reasons: string[] = [];
    for (const a of list) {
      const reason = a(peer);
      if (reason === undefined) return undefined;
      if (!reasons.includes(reason)) reasons.push(reason);
    }
    return reasons.join('; ');
  });
}
