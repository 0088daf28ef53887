import { Inject, Injectable, Optional, type OnModuleDestroy } from '@nestjs/common';
import { Counter, Gauge, register, type OpenMetricsContentType, type PrometheusContentType, type Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import { MtlsConfigError } from '../../errors/mtls.errors.js';
import { CredentialsStatus } from '../credentials-status.js';
import { MtlsEvents, type CredentialSetName, type MtlsEvent } from '../mtls-events.js';
import { BoundedLabel, deniedReasonLabel, handshakeReasonLabel, tokenReasonLabel } from './metric-labels.js';
import { MTLS_METRIC_NAMES, MTLS_METRICS_REGISTRY } from './mtls-metrics.constants.js';

/** A prom-client registry in either exposition format. */
export type MetricsRegistry = Registry<PrometheusContentType> | Registry<OpenMetricsContentType>;

/** Most distinct `route` label values of `nestjs_mtls_peer_denied_total`; later routes count as `other`. */
export const MAX_ROUTE_LABELS = 500;

const RELOAD_RESULTS = ['success', 'refused'] as const;

/**
 * Prometheus metrics of the service's mTLS: certificate and CA bundle NotAfter per credential set (read from the
 * stores at scrape time, so never stale), reloads by result, rejected handshakes by reason, denied peers by reason
 * and route, revoked connections. Registers on construction; `close()` (or module shutdown) unregisters.
 * Nest: import `MtlsMetricsModule.forRoot()`. Without Nest DI:
 * `new MtlsMetrics(app.get(MtlsEvents), app.get(CredentialsStatus), registry)`.
 */
@Injectable()
export class MtlsMetrics implements OnModuleDestroy {
  readonly #registry: MetricsRegistry;
  readonly #subscription: Subscription;
  readonly #reloads: Counter<'set' | 'result'>;
  readonly #handshakeFailures: Counter<'reason'>;
  readonly #peerDenied: Counter<'reason' | 'route'>;
  readonly #revoked: Counter;
  readonly #tokenRejections: Counter<'issuer' | 'reason'>;
  readonly #jwksStale: Counter<'issuer'>;
  readonly #routes = new BoundedLabel(MAX_ROUTE_LABELS);

  constructor(
    events: MtlsEvents,
    credentials: CredentialsStatus,
    @Optional() @Inject(MTLS_METRICS_REGISTRY) registry: MetricsRegistry = register,
  ) {
    this.#registry = registry;
    const taken = Object.values(MTLS_METRIC_NAMES).filter((name) => registry.getSingleMetric(name) !== undefined);
    if (taken.length > 0) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsMetrics: ${taken.join(', ')} already registered in this prom-client Registry; ` +
          'close the other MtlsMetrics first, or give each application its own Registry',
      );
    }
    const registers = [registry];
    const notAfterGauge = (name: string, help: string, read: (set: CredentialSetName) => Date): Gauge<'set'> => {
      const gauge: Gauge<'set'> = new Gauge({
        name,
        help,
        labelNames: ['set'],
        registers,
        collect: () => {
          for (const set of credentials.setNames) gauge.set({ set }, read(set).getTime() / 1000);
        },
      });
      return gauge;
    };
    notAfterGauge(
      MTLS_METRIC_NAMES.certificateNotAfter,
      'NotAfter of the certificate each credential set presents, in seconds since the epoch.',
      (set) => credentials.status(set).current.notAfter,
    );
    notAfterGauge(
      MTLS_METRIC_NAMES.caNotAfter,
      'Earliest NotAfter among the CA bundle certificates of each credential set, in seconds since the epoch.',
      (set) => credentials.status(set).current.caNotAfter,
    );
    this.#reloads = new Counter({
      name: MTLS_METRIC_NAMES.credentialReloads,
      help: 'Credential reloads by set and result: success (new set installed) or refused (old set kept).',
      labelNames: ['set', 'result'],
      registers,
    });
    // Zero series from the start, so that rate() and increase() see the first reload.
    for (const set of credentials.setNames) for (const result of RELOAD_RESULTS) this.#reloads.inc({ set, result }, 0);
    this.#handshakeFailures = new Counter({
      name: MTLS_METRIC_NAMES.handshakeFailures,
      help: 'TLS handshakes the server rejected, by OpenSSL/Node reason (other: any reason outside the known set).',
      labelNames: ['reason'],
      registers,
    });
    this.#peerDenied = new Counter({
      name: MTLS_METRIC_NAMES.peerDenied,
      help: 'Requests refused by the peer guard, by error code and route (Controller.method).',
      labelNames: ['reason', 'route'],
      registers,
    });
    this.#revoked = new Counter({
      name: MTLS_METRIC_NAMES.connectionsRevoked,
      help: 'Open connections closed because their peer is no longer trusted (CRL or CA bundle change).',
      registers,
    });
    // `issuer` is a configured issuer name, never a value from a token: the label set is fixed by configuration.
    this.#tokenRejections = new Counter({
      name: MTLS_METRIC_NAMES.tokenRejections,
      help: 'Bearer tokens refused, by configured issuer name and reason (never any part of the token).',
      labelNames: ['issuer', 'reason'],
      registers,
    });
    this.#jwksStale = new Counter({
      name: MTLS_METRIC_NAMES.jwksStaleServed,
      help: 'Times a JWKS past its refresh time verified a token because fetching it failed (stale-if-error).',
      labelNames: ['issuer'],
      registers,
    });
    this.#subscription = events.events$.subscribe((event) => this.#count(event));
  }

  /** Stops counting and removes the metrics from the registry. Idempotent. */
  close(): void {
    if (this.#subscription.closed) return;
    this.#subscription.unsubscribe();
    for (const name of Object.values(MTLS_METRIC_NAMES)) this.#registry.removeSingleMetric(name);
  }

  onModuleDestroy(): void {
    this.close();
  }

  #count(event: MtlsEvent): void {
    switch (event.type) {
      case 'credentials.rotated':
        this.#reloads.inc({ set: event.set, result: 'success' });
        break;
      case 'credentials.refused':
        this.#reloads.inc({ set: event.set, result: 'refused' });
        break;
      case 'handshake.rejected':
        this.#handshakeFailures.inc({ reason: handshakeReasonLabel(event.reason) });
        break;
      case 'peer.denied':
        this.#peerDenied.inc({ reason: deniedReasonLabel(event.code), route: this.#routes.value(event.route) });
        break;
      case 'connection.revoked':
        this.#revoked.inc();
        break;
      case 'token.rejected':
        this.#tokenRejections.inc({ issuer: event.issuer, reason: tokenReasonLabel(event.reason) });
        break;
      case 'jwks.stale':
        this.#jwksStale.inc({ issuer: event.issuer });
        break;
      default:
        break;
    }
  }
}
