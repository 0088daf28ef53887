import type { PeerRule } from './peer-rule.js';

/** The decorator that stores each kind of rule: how the user wrote it. */
const DECORATORS: Record<PeerRule['kind'], string> = {
  peers: '@AllowPeers',
  trustDomains: '@AllowTrustDomain',
  anyPeer: '@AllowAnyPeer',
  dnsNames: '@AllowDnsNames',
  commonNames: '@AllowCommonNames',
};

/**
 * A rule in the words its decorator was written with (`@AllowPeers(orders, admin)`), not in compiled SPIFFE IDs, so
 * the startup table and the denial logs point at the line of code to change.
 */
export function describePeerRule(rule: PeerRule): string {
  const decorator = DECORATORS[rule.kind] ?? `rule ${String(rule.kind)}`;
  switch (rule.kind) {
    case 'peers':
      return `${decorator}(${rule.peers.join(', ')})`;
    case 'trustDomains':
      return `${decorator}(${rule.trustDomains.join(', ')})`;
    case 'dnsNames':
    case 'commonNames':
      return `${decorator}(${rule.names.join(', ')})`;
    default:
      return `${decorator}()`;
  }
}

/** The rule of a route without an `@Allow…` decorator: the module's `defaultPolicy`. */
export function describeDefaultPolicy(defaultPolicy: 'deny' | 'any-peer'): string {
  return `defaultPolicy '${defaultPolicy}'`;
}
