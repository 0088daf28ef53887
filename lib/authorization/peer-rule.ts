import { didYouMean } from '../errors/did-you-mean.js';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import {
  authorizeAny,
  authorizeAnyOf,
  authorizeCommonName,
  authorizeDnsName,
  authorizeMatch,
  authorizeMemberOf,
  authorizeOneOf,
  checkRuleSpiffeId,
  compileSpiffePattern,
  isSpiffePattern,
  type Authorizer,
} from './authorizer.js';

/** A route's peer rule as the `@Allow…` decorators store it; compiled once at startup by {@link compileRule}. */
export type PeerRule =
  | { readonly kind: 'peers'; readonly peers: readonly string[] } // named peers, SPIFFE IDs or SPIFFE ID patterns
  | { readonly kind: 'trustDomains'; readonly trustDomains: readonly string[] }
  | { readonly kind: 'anyPeer' }
  | { readonly kind: 'dnsNames'; readonly names: readonly string[] }
  | { readonly kind: 'commonNames'; readonly names: readonly string[] };

const SPIFFE_SCHEME = 'spiffe://';

/** Checks a SPIFFE ID or SPIFFE ID pattern; throws the authorizer's {@link MtlsConfigError}. */
function checkIdOrPattern(value: unknown): void {
  if (typeof value === 'string' && isSpiffePattern(value)) compileSpiffePattern(value);
  else checkRuleSpiffeId(value);
}

/**
 * Validates MtlsModule option `peers` (name → SPIFFE ID or pattern). Throws {@link MtlsConfigError} naming the peer,
 * its value and the reason, so a typo fails startup rather than denying that peer at run time.
 */
export function compileNamedPeers(peers: Record<string, string> | undefined): ReadonlyMap<string, string> {
  const named = new Map<string, string>();
  if (peers === undefined) return named;
  if (peers === null || typeof peers !== 'object' || Array.isArray(peers)) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "peers" must be an object of name → SPIFFE ID, e.g. { orders: 'spiffe://shop.test/ns/shop/sa/orders' }`,
    );
  }
  for (const [name, value] of Object.entries(peers)) {
    const option = `MtlsModule option "peers.${name}"`;
    if (name === '' || name.startsWith(SPIFFE_SCHEME)) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `${option}: a peer name must be a plain name such as "orders"; SPIFFE IDs go on the right-hand side`,
      );
    }
    try {
      checkIdOrPattern(value);
    } catch (err) {
      if (!(err instanceof MtlsConfigError)) throw err;
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `${option}: ${err.message}`, { cause: err });
    }
    named.set(name, value);
  }
  return named;
}

/**
 * Compiles a rule into one {@link Authorizer}. In `peers`, an entry starting with `spiffe://` is a SPIFFE ID (a pattern
 * when it holds `*`); anything else is a name looked up in `namedPeers`. Throws {@link MtlsConfigError}
 * (`ERR_MTLS_UNKNOWN_PEER` for an undeclared name, `ERR_MTLS_CONFIG_INVALID` for a bad value).
 */
export function compileRule(rule: PeerRule, namedPeers: ReadonlyMap<string, string>): Authorizer {
  switch (rule.kind) {
    case 'peers':
      return compilePeers(rule.peers, namedPeers);
    case 'trustDomains':
      return authorizeMemberOf(...rule.trustDomains);
    case 'anyPeer':
      return authorizeAny();
    case 'dnsNames':
      return authorizeDnsName(...rule.names);
    case 'commonNames':
      return authorizeCommonName(...rule.names);
    default:
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `unknown peer rule ${JSON.stringify(rule)}: use the @Allow… decorators to declare rules`,
      );
  }
}

function compilePeers(entries: readonly string[], namedPeers: ReadonlyMap<string, string>): Authorizer {
  const ids: string[] = [];
  const patterns: string[] = [];
  for (const entry of entries) {
    if (typeof entry !== 'string') {
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `peer ${String(entry)} must be a string, got ${typeof entry}`);
    }
    const value = entry.startsWith(SPIFFE_SCHEME) ? entry : namedPeers.get(entry);
    if (value === undefined) {
      throw new MtlsConfigError('ERR_MTLS_UNKNOWN_PEER', unknownPeerMessage(entry, namedPeers));
    }
    (isSpiffePattern(value) ? patterns : ids).push(value);
  }
  if (ids.length + patterns.length === 0) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', 'a peers rule needs at least one peer');
  }
  // IDs share one set; each pattern is its own matcher. authorizeAnyOf folds identical denials into one reason.
  return authorizeAnyOf(...(ids.length > 0 ? [authorizeOneOf(...ids)] : []), ...patterns.map(authorizeMatch));
}

/** Names the undeclared peer, the declared name it is probably a typo of, and the two ways to fix it. */
function unknownPeerMessage(entry: string, namedPeers: ReadonlyMap<string, string>): string {
  const names = [...namedPeers.keys()];
  const shown = names.length > 10 ? `${names.slice(0, 10).join(', ')}, … (${names.length} in all)` : names.join(', ');
  const declared = names.length === 0 ? 'none is declared' : `declared: ${shown}`;
  return (
    `unknown peer ${JSON.stringify(entry)}:${didYouMean(entry, namedPeers.keys())} declare it in MtlsModule options ` +
    `\`peers\` (${declared}), or use a SPIFFE ID`
  );
}
