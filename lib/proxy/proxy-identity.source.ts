import { Logger } from '@nestjs/common';
import { Socket } from 'node:net';
import type { CredentialStore } from '../credentials/credential-store.js';
import type { Credentials } from '../credentials/credentials.interfaces.js';
import { revocationListsOf } from '../credentials/revocation-lists.js';
import { MtlsError, PeerError, ProxyHeaderError } from '../errors/mtls.errors.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { LogRateLimiter } from '../observability/log-rate-limiter.js';
import type { ConnectionIdentities } from '../server/connection-identity.js';
import { PeerIdentitySource, type IdentifiableRequest } from '../server/peer-identity.source.js';
import { connectionOf } from '../server/peer-request.js';
import {
  forwardedVerdictLapsed,
  identityFromForwardedCertificate,
  identityFromXfccElement,
  MAX_FORWARDED_CHAIN,
  validityProblem,
  type ForwardedTrust,
} from './forwarded-identity.js';
import { headerLines, isLoopbackAddress, PROXY_HEADER_NAMES } from './proxy-trust.js';
import type { ResolvedProxyOptions } from './proxy.options.js';
import { parseClientCert, parseClientCertChain } from './rfc9440.parser.js';
import { readXfccElement, scanXfcc, XFCC_DEFAULT_LIMITS, type XfccLimits } from './xfcc.parser.js';

type Verdict = PeerIdentity | PeerError;

/** The ProxyHeaderError `parse` throws. */
function refused(parse: () => unknown): PeerError {
  try {
    parse();
  } catch (error) {
    if (error instanceof PeerError) return error;
    throw error;
  }
  return new ProxyHeaderError('ERR_MTLS_PROXY_HEADER_TOO_LARGE', 'header field too large');
}

/** Distinct forwarded callers whose verdict is remembered per credential set; beyond it the memory starts over. */
const MAX_REMEMBERED = 1024;

/**
 * Identities from a trusted proxy's header, per request. The proxy is trusted by where it connects from (loopback) or
 * by the identity of its own mTLS connection (SPIFFE IDs); a header from anyone else is ignored and the request has
 * no identity (logged, rate-limited). The selected XFCC element's verdict (or the RFC 9440 fields') is cached per
 * credential set by its exact text, so a caller's certificate is parsed and verified once, while the whole header
 * is still checked on every request.
 */
export class ProxyIdentitySource extends PeerIdentitySource {
  readonly scope = 'request';
  readonly #logger = new Logger('MtlsProxy');
  readonly #limiter: LogRateLimiter;
  readonly #names: readonly string[];
  readonly #limits: XfccLimits;
  readonly #verdicts = new WeakMap<Credentials, Map<string, Verdict>>();

  constructor(
    private readonly proxy: ResolvedProxyOptions,
    private readonly connections: Pick<ConnectionIdentities, 'identify'>,
    private readonly store: Pick<CredentialStore, 'current'>,
    logRateLimitPerMinute: number,
  ) {
    super();
    this.#limiter = new LogRateLimiter(logRateLimitPerMinute);
    this.#names = PROXY_HEADER_NAMES[proxy.header];
    this.#limits = { maxBytes: proxy.maxHeaderBytes, maxElements: XFCC_DEFAULT_LIMITS.maxElements };
  }

  identify(request: IdentifiableRequest): PeerIdentity | PeerError {
    // Express hands the Node request itself, Fastify wraps it in `raw`.
    const message = (request.raw ?? request) as IdentifiableRequest;
    const rawHeaders = message.rawHeaders;
    if (!Array.isArray(rawHeaders)) {
      return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'the request exposes no raw headers to read the proxy header from');
    }
    const { values, counts } = headerLines(rawHeaders as string[], this.#names);
    const untrusted = this.#untrusted(connectionOf(request));
    if (untrusted !== undefined) {
      const sent = counts.some((count) => count > 0);
      if (sent) this.#warn(`${this.#names.join('/')} header ignored: ${untrusted}; the request has no identity`);
      return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', `not the trusted proxy (${untrusted}): no identity`);
    }
    for (let h = 0; h < counts.length; h++) {
      if (counts[h]! > 1) {
        return new ProxyHeaderError(
          'ERR_MTLS_PROXY_HEADER_REPEATED',
          `${this.#names[h]} sent on ${counts[h]} lines: a proxy writes one; a second line is someone else's`,
        );
      }
    }
    try {
      return this.proxy.header === 'xfcc' ? this.#fromXfcc(values[0]) : this.#fromRfc9440(values[0], values[1]);
    } catch (error) {
      if (error instanceof PeerError) return error;
      throw error;
    }
  }

  /** Why the connection under this request may not speak for callers, or undefined when it is the trusted proxy. */
  #untrusted(socket: unknown): string | undefined {
    const trust = this.proxy.trust;
    if (trust.kind === 'loopback') {
      // A real TCP connection only: Fastify's inject() hands the app a fake socket that reports 127.0.0.1.
      if (!(socket instanceof Socket)) return 'the request did not come over a TCP connection (e.g. inject())';
      const address = socket.remoteAddress;
      return isLoopbackAddress(address) ? undefined : `peer ${address ?? '(unknown address)'} is not on the loopback interface`;
    }
    const proxy = this.connections.identify(socket);
    if (proxy instanceof PeerError) return `the TLS peer is not authenticated (${proxy.code})`;
    if (proxy.spiffeId !== undefined && trust.spiffeIds.has(proxy.spiffeId)) return undefined;
    return `TLS peer ${proxy.spiffeId ?? proxy.subject} is not a trusted proxy (option proxy.trust.spiffeIds)`;
  }

  #fromXfcc(header: string | undefined): Verdict {
    if (header === undefined) return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'the proxy sent no x-forwarded-client-cert');
    const bounds = scanXfcc(header, this.#limits);
    const at = this.proxy.element === 'last' ? bounds.length - 2 : 0;
    const start = bounds[at]!;
    const end = bounds[at + 1]!;
    const key = start === 0 && end === header.length ? header : header.slice(start, end);
    return this.#remembered(key, (trust) => {
      const element = readXfccElement(key, 0, key.length);
      if (this.proxy.requireCertificate && element.cert === undefined) {
        return new PeerError(
          'ERR_MTLS_PEER_UNAUTHENTICATED',
          'the proxy forwarded no certificate (option proxy.requireCertificate)',
        );
      }
      return identityFromXfccElement(element, trust);
    });
  }

  #fromRfc9440(cert: string | undefined, chain: string | undefined): Verdict {
    if (cert === undefined) {
      if (chain !== undefined)
        return new ProxyHeaderError('ERR_MTLS_PROXY_HEADER_MALFORMED', 'client-cert-chain without client-cert');
      return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'the proxy sent no client-cert');
    }
    const limits = { maxBytes: this.proxy.maxHeaderBytes, maxChain: MAX_FORWARDED_CHAIN };
    // Oversized fields are refused before they could become a cache key.
    if (cert.length > limits.maxBytes) return refused(() => parseClientCert(cert, limits));
    if (chain !== undefined && chain.length > limits.maxBytes) return refused(() => parseClientCertChain(chain, limits));
    // Cached by the exact text: a hit is what parsing the same text again would give, malformed or not.
    const key = chain === undefined ? cert : `${cert} ${chain}`;
    return this.#remembered(key, (trust) =>
      identityFromForwardedCertificate(
        parseClientCert(cert, limits),
        chain === undefined ? [] : parseClientCertChain(chain, limits),
        'rfc9440',
        trust,
      ),
    );
  }

  /**
   * The verdict for `key` under the current credentials, derived once; the leaf's validity is checked on every use, and
   * the verdict is derived again once a certificate of its chain or a CRL it was checked against has expired.
   */
  #remembered(key: string, derive: (trust: ForwardedTrust) => Verdict): Verdict {
    const credentials = this.store.current;
    let verdicts = this.#verdicts.get(credentials);
    if (verdicts === undefined) {
      verdicts = new Map();
      this.#verdicts.set(credentials, verdicts);
    }
    const now = new Date();
    let verdict = verdicts.get(key);
    // A certificate of the forwarded chain, or a CRL it was checked against, expired since: verify it again.
    if (verdict !== undefined && !(verdict instanceof PeerError) && forwardedVerdictLapsed(verdict, now)) verdict = undefined;
    if (verdict === undefined) {
      const trust: ForwardedTrust = {
        bundle: this.proxy.verifyChain ? credentials.caCertificates : undefined,
        crls: this.proxy.verifyChain ? revocationListsOf(credentials) : [],
        now,
      };
      try {
        verdict = derive(trust);
      } catch (error) {
        if (error instanceof PeerError) verdict = error;
        else if (error instanceof MtlsError) verdict = new PeerError('ERR_MTLS_PEER_INVALID', error.message);
        else {
          // Fail closed on what the checks did not foresee (a 403, not a 500), and say so.
          const name = error instanceof Error ? error.name : typeof error;
          this.#warn(`forwarded identity could not be derived (${name}); refused`);
          verdict = new PeerError('ERR_MTLS_PEER_INVALID', `forwarded identity could not be derived (${name})`);
        }
      }
      if (verdicts.size >= MAX_REMEMBERED) verdicts.clear();
      verdicts.set(key, verdict);
    }
    if (verdict instanceof PeerError) return verdict;
    return validityProblem(verdict, now) ?? verdict;
  }

  #warn(line: string): void {
    const suppressed = this.#limiter.admit();
    if (suppressed === undefined) return;
    this.#logger.warn(suppressed > 0 ? `${line} (${suppressed} similar lines suppressed)` : line);
  }
}
