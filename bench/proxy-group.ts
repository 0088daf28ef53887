import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { xfccElement } from '../lib/testing/index.js';
import type { CaseResult, Cases } from './bench-results.js';
import { SERVER_SPIFFE_ID } from './fixtures.js';
import type { ProxyServerVariant } from './protocol.js';

/** The XFCC headers of the proxy group, as the sidecar writes them. */
export type ProxyHeaderKind = 'none' | 'istio' | 'envoy-cert' | 'append';

/** One case: a server and the header the load generator sends it. */
export interface ProxyCase {
  readonly key: 'plain' | 'istio' | 'envoy-cert' | 'append';
  readonly label: string;
  readonly server: ProxyServerVariant;
  readonly header: ProxyHeaderKind;
}

/** The proxy group's cases, the baseline first. */
export const PROXY_CASES: readonly ProxyCase[] = [
  { key: 'plain', label: 'Nest, plain HTTP, no guard', server: 'http-nest', header: 'none' },
  { key: 'istio', label: 'proxy mode, Istio XFCC (By;Hash;Subject;URI)', server: 'http-xfcc', header: 'istio' },
  {
    key: 'envoy-cert',
    label: 'proxy mode, Envoy XFCC with Cert (chain verified, cached)',
    server: 'http-xfcc',
    header: 'envoy-cert',
  },
  { key: 'append', label: 'proxy mode, APPEND_FORWARD, 3 elements', server: 'http-xfcc', header: 'append' },
];

/** Results of the proxy group. */
export interface ProxyGroup {
  readonly keepAlive: Cases<ProxyCase['key']>;
}

/** The headers of each kind, for the caller whose Kubernetes Secret layout is in `callerDir`. */
export async function proxyHeaders(
  callerDir: string,
): Promise<Record<ProxyHeaderKind, Readonly<Record<string, string>> | undefined>> {
  const chainPem = await readFile(join(callerDir, 'tls.crt'), 'utf8');
  const certPem = chainPem.slice(0, chainPem.indexOf('-----END CERTIFICATE-----') + 25) + '\n';
  const caller = { certPem, chainPem };
  const istio = xfccElement(caller, { by: SERVER_SPIFFE_ID });
  const xfcc = (value: string) => ({ 'x-forwarded-client-cert': value });
  return {
    none: undefined,
    istio: xfcc(istio),
    'envoy-cert': xfcc(xfccElement(caller, { by: SERVER_SPIFFE_ID, cert: true })),
    append: xfcc(`${istio},${istio},${istio}`),
  };
}

function row(result: CaseResult, baseline: CaseResult): string {
  const { summary } = result;
  const ratio = summary.serverCpuUsPerRequest.median / baseline.summary.serverCpuUsPerRequest.median;
  const errors = summary.errors > 0 ? ` (${summary.errors} errors: ${summary.firstError ?? '?'})` : '';
  return (
    `| ${result.label}${errors} | ${summary.serverCpuUsPerRequest.median.toFixed(1)} | ${ratio.toFixed(2)}× | ` +
    `${summary.requestsPerSecond.median.toFixed(0)} | ${summary.p99Ms.median.toFixed(2)} |`
  );
}

/** The proxy group as a Markdown section: server CPU per request and its ratio to Nest without a guard. */
export function renderProxyMarkdown(group: ProxyGroup): string {
  const baseline = group.keepAlive.plain;
  const lines = [
    '',
    '## Proxy mode (plain HTTP behind a loopback sidecar), keep-alive',
    '',
    'Server CPU per request (median of rounds), against the same Nest app without MtlsModule and without a guard.',
    '',
    '| case | server µs/req | ratio | req/s | p99 ms |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...PROXY_CASES.map((c) => row(group.keepAlive[c.key], baseline)),
    '',
  ];
  return lines.join('\n');
}
