import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { PeerRule } from '../authorization/peer-rule.js';
import { MTLS_PEER_RULE } from '../mtls.constants.js';
import { peerOfRequest, requestOf } from './peer-request.js';

function rule(value: PeerRule): ClassDecorator & MethodDecorator {
  return SetMetadata(MTLS_PEER_RULE, value);
}

function nonEmpty(decorator: string, values: readonly string[]): readonly string[] {
  if (values.length === 0) throw new TypeError(`@${decorator}() needs at least one value`);
  return Object.freeze([...values]);
}

/**
 * Admits only the listed peers: names declared in `MtlsModule` option `peers`, SPIFFE IDs, or SPIFFE ID patterns
 * (`*` = one whole path segment). On a method it replaces the controller's rule.
 * @example
 * ```ts
 * @AllowPeers('orders', 'spiffe://shop.test/ns/ops/sa/admin')
 * ```
 */
export const AllowPeers = (...peers: string[]): ClassDecorator & MethodDecorator =>
  rule({ kind: 'peers', peers: nonEmpty('AllowPeers', peers) });

/**
 * Admits any peer whose SPIFFE ID belongs to one of the trust domains.
 * @example
 * ```ts
 * @AllowTrustDomain('shop.test')
 * ```
 */
export const AllowTrustDomain = (...trustDomains: string[]): ClassDecorator & MethodDecorator =>
  rule({ kind: 'trustDomains', trustDomains: nonEmpty('AllowTrustDomain', trustDomains) });

/**
 * Admits any authenticated peer (its certificate chains to the CA bundle), whatever its identity.
 * @example
 * ```ts
 * @AllowAnyPeer()
 * ```
 */
export const AllowAnyPeer = (): ClassDecorator & MethodDecorator => rule({ kind: 'anyPeer' });

/**
 * Admits any peer, SPIFFE or legacy, by a DNS SAN; `*.example.com` matches exactly one left-most label.
 * @example
 * ```ts
 * @AllowDnsNames('billing.internal.example.com')
 * ```
 */
export const AllowDnsNames = (...names: string[]): ClassDecorator & MethodDecorator =>
  rule({ kind: 'dnsNames', names: nonEmpty('AllowDnsNames', names) });

/**
 * Admits legacy peers without any SAN by their subject's single commonName. Prefer SPIFFE IDs or DNS names.
 * @example
 * ```ts
 * @AllowCommonNames('legacy-batch')
 * ```
 */
export const AllowCommonNames = (...names: string[]): ClassDecorator & MethodDecorator =>
  rule({ kind: 'commonNames', names: nonEmpty('AllowCommonNames', names) });

/**
 * Injects the caller's {@link PeerIdentity}, set by the guard once the peer was admitted.
 * @example
 * get(@Param('sku') sku: string, @Peer() caller: PeerIdentity) {}
 */
export const Peer = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  const request = requestOf(context);
  return request === undefined ? undefined : peerOfRequest(request);
});
