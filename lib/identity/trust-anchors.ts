import { certificateLabel } from '../x509/certificate-checks.js';
import { verifyChain } from '../x509/chain-verifier.js';
import type { CertificateInfo } from '../x509/certificate.js';
import type { PeerIdentity } from './peer-identity.js';
import { trustDomainBindingOf, type TrustDomainBinding } from './trust-domain-bundles.js';
import { parseSpiffeId, spiffeIdError } from './spiffe-id.js';
import { hasSpiffeScheme } from './svid-rules.js';

/*
 * X509-SVID §5.1 validates a leaf against the bundle of *its own* trust domain; a TLS stack given one merged bundle
 * (Node's `ca`) accepts any root for any SPIFFE ID. A trust anchor that names its trust domain with a `spiffe://<td>`
 * URI SAN (X509-SVID §3.2; SPIRE, cert-manager's CSI driver, our dev CA and TestPki all write one) gives the missing
 * link back: such an anchor vouches for that trust domain only.
 *
 * Limitation: an anchor without a SPIFFE URI SAN names no trust domain and so vouches for any of them, as every root
 * did before. Keep such roots out of a bundle shared between trust domains, or give them a `spiffe://<td>` SAN.
 */

/**
 * What a CA certificate says about the trust domain it serves: `ok` with the trust domain, or with `undefined` when it
 * has no spiffe URI SAN (it binds none); not `ok` when its spiffe URI SAN names no single trust domain, in which case
 * it vouches for no SPIFFE ID at all.
 */
export type DeclaredTrustDomain =
  { readonly ok: true; readonly trustDomain: string | undefined } | { readonly ok: false; readonly problem: string };

const NO_TRUST_DOMAIN: DeclaredTrustDomain = Object.freeze({ ok: true, trustDomain: undefined });

/**
 * Reads the trust domain a CA certificate declares: its one `spiffe://<td>` URI SAN, without a path (X509-SVID §3.2).
 * Other URI SANs are ignored; several spiffe URI SANs, an invalid SPIFFE ID or one with a path are a problem.
 */
export function declaredTrustDomain(ca: CertificateInfo): DeclaredTrustDomain {
  let id: string | undefined;
  for (const uri of ca.uris) {
    if (!hasSpiffeScheme(uri)) continue;
    if (id !== undefined) return problem(`${certificateLabel(ca)} carries more than one spiffe URI SAN`);
    id = uri;
  }
  if (id === undefined) return NO_TRUST_DOMAIN;
  const error = spiffeIdError(id);
  if (error !== undefined) {
    return problem(`${certificateLabel(ca)} carries the invalid SPIFFE ID ${JSON.stringify(id)}: ${error}`);
  }
  const { trustDomain, path } = parseSpiffeId(id);
  if (path !== '') {
    return problem(
      `${certificateLabel(ca)} carries the SPIFFE ID ${JSON.stringify(id)}, which has a path; ` +
        "a CA's SPIFFE ID names its trust domain only (X509-SVID §3.2)",
    );
  }
  return Object.freeze({ ok: true, trustDomain });
}

/**
 * Why `bundle` cannot be the bundle of `trustDomain` it was delivered as (a Workload API bundle, own or federated), or
 * undefined: one of its CA certificates declares another trust domain, or names no single one (X509-SVID §3.2). A CA
 * that declares none may be in any bundle. Such a bundle would let that CA mint identities of `trustDomain` under
 * another trust domain's name, or mean the federation relationship serves the wrong bundle.
 */
export function bundleTrustDomainProblem(trustDomain: string, bundle: readonly CertificateInfo[]): string | undefined {
  for (const ca of bundle) {
    const declared = declaredTrustDomain(ca);
    if (!declared.ok)
      return `the bundle of trust domain ${trustDomain} holds a CA that names no single trust domain: ${declared.problem}`;
    if (declared.trustDomain !== undefined && declared.trustDomain !== trustDomain) {
      return `the bundle of trust domain ${trustDomain} holds ${certificateLabel(ca)}, a CA of trust domain ${declared.trustDomain}`;
    }
  }
  return undefined;
}

/**
 * The trust domain the anchor of a verified chain vouches for. `chain` runs from the leaf to the trust anchor, which
 * must be self-issued. A leaf that is its own anchor (a self-signed certificate pinned in the bundle) binds nothing.
 */
export function anchorTrustDomain(chain: readonly CertificateInfo[]): DeclaredTrustDomain {
  const anchor = chain[chain.length - 1];
  if (anchor === undefined) return problem('the chain is empty');
  if (!anchor.selfIssued)
    return problem(`the chain ends at ${certificateLabel(anchor)}, which is not a self-issued trust anchor`);
  return chain.length === 1 ? NO_TRUST_DOMAIN : declaredTrustDomain(anchor);
}

/**
 * Why `anchor` may not vouch for the SPIFFE ID `spiffeId` of trust domain `trustDomain`, or undefined when it may:
 * it declares that trust domain or none. `declared` is what {@link anchorTrustDomain} read from it.
 */
export function trustDomainMismatch(
  spiffeId: string,
  trustDomain: string,
  declared: DeclaredTrustDomain,
  anchor: CertificateInfo | undefined,
): string | undefined {
  const at = anchor === undefined ? '' : ` (${certificateLabel(anchor)})`;
  if (!declared.ok) {
    return `SPIFFE ID ${JSON.stringify(spiffeId)} chains to a trust anchor that vouches for no trust domain: ${declared.problem}`;
  }
  if (declared.trustDomain === undefined || declared.trustDomain === trustDomain) return undefined;
  return (
    `SPIFFE ID ${JSON.stringify(spiffeId)} is in trust domain ${trustDomain} but the certificate chains to the ` +
    `trust anchor of ${declared.trustDomain}${at}`
  );
}

function problem(text: string): DeclaredTrustDomain {
  return Object.freeze({ ok: false, problem: text });
}

/*
 * Ties a peer's SPIFFE ID to the trust anchor its certificate chains to (X509-SVID §5.1: validate against the bundle
 * of the ID's own trust domain). OpenSSL has already verified the chain against the whole bundle, so the common cases
 * cost nothing per connection: a bundle whose roots name no trust domain binds nothing, and one whose roots all name
 * the same trust domain only needs a string comparison. Only a bundle that mixes trust domains (federation) is
 * searched, once per leaf: for a path to a root that vouches for the peer's trust domain, signatures checked. Node
 * exposes no verified chain: `getPeerCertificate(true)` links certificates by name alone (a peer can append junk that
 * names its way to another root) and costs ~0.6 ms a call; `getPeerX509Certificate()` holds only what the peer sent.
 */

interface Anchor {
  readonly certificate: CertificateInfo;
  readonly declared: DeclaredTrustDomain;
}

/** How the bundle binds trust domains, decided once per bundle. */
type Binding =
  | { readonly kind: 'explicit'; readonly binding: TrustDomainBinding }
  | { readonly kind: 'unbound' }
  | { readonly kind: 'uniform'; readonly trustDomain: string; readonly anchor: CertificateInfo | undefined }
  | { readonly kind: 'mixed' };

/** Verified leaves (or chains) kept, so a peer's reconnects (and resumed sessions, which omit intermediates) are free. */
const MAX_VERIFIED = 1024;

const bundles = new WeakMap<readonly CertificateInfo[], TrustAnchors>();

/**
 * The trust anchors of one trust bundle and the trust domain each vouches for. A root (self-issued certificate) with a
 * `spiffe://<td>` URI SAN vouches only for SPIFFE IDs of `<td>`; a root without one vouches for any trust domain
 * (legacy bundles keep working, but give no protection: keep such roots out of bundles shared between trust domains).
 */
export class TrustAnchors {
  readonly #bundle: readonly CertificateInfo[];
  readonly #anchors: readonly Anchor[];
  readonly #binding: Binding;
  /** Roots (plus the bundle's non-root certificates, which help build paths) allowed per declared trust domain. */
  readonly #rootsByTrustDomain = new Map<string, readonly CertificateInfo[]>();
  /** Roots allowed for a trust domain no anchor declares: those that declare none. */
  readonly #undeclaredRoots: readonly CertificateInfo[];
  readonly #verified = new Set<string>();

  private constructor(bundle: readonly CertificateInfo[]) {
    this.#bundle = bundle;
    this.#anchors = bundle
      .filter((certificate) => certificate.selfIssued)
      .map((certificate) => ({ certificate, declared: declaredTrustDomain(certificate) }));
    const helpers = bundle.filter((c) => !c.selfIssued);
    const rootsFor = (accept: (declared: DeclaredTrustDomain) => boolean): readonly CertificateInfo[] =>
      Object.freeze([...this.#anchors.filter((a) => accept(a.declared)).map((a) => a.certificate), ...helpers]);
    const undeclared = (d: DeclaredTrustDomain): boolean => d.ok && d.trustDomain === undefined;
    this.#undeclaredRoots = rootsFor(undeclared);
    for (const { declared } of this.#anchors) {
      if (!declared.ok || declared.trustDomain === undefined || this.#rootsByTrustDomain.has(declared.trustDomain)) continue;
      const trustDomain = declared.trustDomain;
      this.#rootsByTrustDomain.set(
        trustDomain,
        rootsFor((d) => undeclared(d) || (d.ok && d.trustDomain === trustDomain)),
      );
    }
    const explicit = trustDomainBindingOf(bundle);
    this.#binding = explicit === undefined ? bindingOf(this.#anchors) : { kind: 'explicit', binding: explicit };
  }

  /** The anchors of `bundle` (the CA certificates given to TLS as `ca`); built once per bundle array. */
  static of(bundle: readonly CertificateInfo[]): TrustAnchors {
    let anchors = bundles.get(bundle);
    if (anchors === undefined) {
      anchors = new TrustAnchors(bundle);
      bundles.set(bundle, anchors);
    }
    return anchors;
  }

  /**
   * Why `peer`'s SPIFFE ID is not vouched for by the trust anchor its certificate chains to, or undefined. Call it
   * after TLS verified the chain against this bundle. `presented` returns the certificates the peer sent after its
   * leaf; it is called only when the bundle mixes trust domains. `now` is when the path must be valid (default: now).
   * Legacy peers (no SPIFFE ID) are not bound.
   */
  problem(
    peer: PeerIdentity,
    leaf: CertificateInfo,
    presented: () => readonly CertificateInfo[],
    now?: Date,
  ): string | undefined {
    const binding = this.#binding;
    if (binding.kind === 'explicit') return this.#explicitProblem(binding.binding, peer, leaf, presented, now);
    const { spiffeId, trustDomain } = peer;
    if (spiffeId === undefined || trustDomain === undefined) return undefined;
    if (binding.kind === 'unbound') return undefined;
    if (binding.kind === 'uniform') {
      if (binding.trustDomain === trustDomain) return undefined;
      return trustDomainMismatch(spiffeId, trustDomain, { ok: true, trustDomain: binding.trustDomain }, binding.anchor);
    }
    if (this.#verified.has(leaf.fingerprint256)) return undefined;
    const roots = this.#rootsByTrustDomain.get(trustDomain) ?? this.#undeclaredRoots;
    const at = now ?? new Date();
    const intermediates = presented();
    if (roots.some((c) => c.selfIssued) && verifyChain(leaf, intermediates, roots, { now: at }).ok) {
      remember(this.#verified, leaf.fingerprint256);
      return undefined;
    }
    // Refused either way; the rest only finds the words: which anchor the certificate does chain to.
    const anywhere = verifyChain(leaf, intermediates, this.#bundle, { now: at });
    if (!anywhere.ok) {
      return (
        `SPIFFE ID ${JSON.stringify(spiffeId)}: no path from the certificate to a trust anchor of trust domain ` +
        `${trustDomain}: ${anywhere.reason}`
      );
    }
    const anchor = anywhere.path[anywhere.path.length - 1];
    return (
      trustDomainMismatch(spiffeId, trustDomain, anchorTrustDomain(anywhere.path), anchor) ??
      // Unreachable unless the bundle holds two paths and only a disallowed one verifies now: refuse all the same.
      `SPIFFE ID ${JSON.stringify(spiffeId)}: no path from the certificate to a trust anchor of trust domain ${trustDomain}`
    );
  }

  /**
   * Explicit bundles (federation, go-spiffe's `x509svid.Verify`): the peer's chain must reach a root of its own trust
   * domain's bundle; a peer without a SPIFFE ID is held to our own trust domain's bundle. With a single trust domain,
   * OpenSSL already verified the chain against exactly that bundle, so only the name is compared.
   */
  #explicitProblem(
    binding: TrustDomainBinding,
    peer: PeerIdentity,
    leaf: CertificateInfo,
    presented: () => readonly CertificateInfo[],
    now: Date | undefined,
  ): string | undefined {
    const trustDomain = peer.trustDomain ?? binding.home;
    const who = peer.spiffeId === undefined ? 'a peer without a SPIFFE ID' : `SPIFFE ID ${JSON.stringify(peer.spiffeId)}`;
    const roots = binding.bundles.get(trustDomain);
    if (roots === undefined) {
      return `${who}: no bundle for trust domain ${trustDomain} (trusted: ${[...binding.bundles.keys()].join(', ')})`;
    }
    if (binding.bundles.size === 1) return undefined;
    const key = `${trustDomain}\0${leaf.fingerprint256}`;
    if (this.#verified.has(key)) return undefined;
    const result = verifyChain(leaf, presented(), roots, { now: now ?? new Date() });
    if (!result.ok)
      return `${who}: the certificate does not chain to the bundle of trust domain ${trustDomain}: ${result.reason}`;
    remember(this.#verified, key);
    return undefined;
  }
}

function bindingOf(anchors: readonly Anchor[]): Binding {
  const first = anchors[0];
  if (anchors.every((a) => a.declared.ok && a.declared.trustDomain === undefined)) return { kind: 'unbound' };
  if (first !== undefined && first.declared.ok && first.declared.trustDomain !== undefined) {
    const trustDomain = first.declared.trustDomain;
    if (anchors.every((a) => a.declared.ok && a.declared.trustDomain === trustDomain)) {
      return { kind: 'uniform', trustDomain, anchor: anchors.length === 1 ? first.certificate : undefined };
    }
  }
  return { kind: 'mixed' };
}

/** Chains that verified in {@link chainTrustDomainProblem}, by their certificates' fingerprints (bounded, oldest out). */
const verifiedChains = new Set<string>();

/**
 * For a client that was not given its trust bundle: binds the SPIFFE ID to the anchor of the chain as Node rebuilt it
 * for `checkServerIdentity` (leaf first, then the peer's certificates Node linked by name, then the root it looked up
 * in the trust store). Node links by name only, so every signature is checked here (once per distinct chain); what
 * stays out of reach without the bundle is a CA that forges a self-signed twin of itself naming another trust domain.
 * Prefer {@link TrustAnchors}.
 */
export function chainTrustDomainProblem(
  peer: PeerIdentity,
  chain: readonly CertificateInfo[],
  now: Date = new Date(),
): string | undefined {
  const { spiffeId, trustDomain } = peer;
  if (spiffeId === undefined || trustDomain === undefined) return undefined;
  const [leaf] = chain;
  const end = chain[chain.length - 1];
  if (leaf === undefined || end === undefined) return `SPIFFE ID ${JSON.stringify(spiffeId)}: no certificate chain to check`;
  if (chain.length === 1 || !end.selfIssued) {
    const declared = anchorTrustDomain(chain);
    return declared.ok ? undefined : `SPIFFE ID ${JSON.stringify(spiffeId)}: ${declared.problem}`;
  }
  const key = chain.map((certificate) => certificate.fingerprint256).join('/');
  if (!verifiedChains.has(key)) {
    const result = verifyChain(leaf, chain.slice(1, -1), [end], { now });
    if (!result.ok) {
      const anchor = certificateLabel(end);
      return `SPIFFE ID ${JSON.stringify(spiffeId)}: the chain does not verify up to its trust anchor ${anchor}: ${result.reason}`;
    }
    remember(verifiedChains, key);
  }
  return trustDomainMismatch(spiffeId, trustDomain, declaredTrustDomain(end), end);
}

/** Adds `key` to a bounded set, dropping the oldest entry when full (a Set iterates in insertion order). */
function remember(set: Set<string>, key: string): void {
  if (set.size >= MAX_VERIFIED) {
    for (const oldest of set) {
      set.delete(oldest);
      break;
    }
  }
  set.add(key);
}
