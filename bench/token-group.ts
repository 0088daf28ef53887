// The token group: what `@RequireToken` adds to a guarded route, keep-alive, measured side by side with the same route
// without a token in the same run.
import { caseResult, LABELS, type CaseResult } from './bench-results.js';
import type { LoadResult, ServerVariant } from './protocol.js';

/** The two servers compared: (c) and (c) + `@RequireToken`. */
export const TOKEN_SERVERS = ['mtls', 'mtls-token'] as const satisfies readonly ServerVariant[];

/** The token group's cases and its ratio. */
export interface TokenGroupResult {
  readonly keepAlive: Readonly<Record<(typeof TOKEN_SERVERS)[number], CaseResult>>;
  /** Server CPU per request, token route ÷ the same route without the token (medians over the rounds). */
  readonly serverCpuRatio: number;
  /** Requests per second, same order. */
  readonly requestsPerSecondRatio: number;
}

/** Summarises the rounds of both cases. */
export function tokenGroupResult(
  rounds: Readonly<Record<(typeof TOKEN_SERVERS)[number], readonly LoadResult[]>>,
): TokenGroupResult {
  const keepAlive = {
    mtls: caseResult(LABELS.mtls, rounds.mtls),
    'mtls-token': caseResult(LABELS['mtls-token'], rounds['mtls-token']),
  };
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : Number.NaN);
  return {
    keepAlive,
    serverCpuRatio: ratio(
      keepAlive['mtls-token'].summary.serverCpuUsPerRequest.median,
      keepAlive.mtls.summary.serverCpuUsPerRequest.median,
    ),
    requestsPerSecondRatio: ratio(
      keepAlive['mtls-token'].summary.requestsPerSecond.median,
      keepAlive.mtls.summary.requestsPerSecond.median,
    ),
  };
}

/** The group's Markdown section. */
export function renderTokenGroup(result: TokenGroupResult): string {
  const rows = Object.values(result.keepAlive).map(
    ({ label, summary }) =>
      `| ${label} | ${summary.requestsPerSecond.median.toFixed(0)} | ${summary.serverCpuUsPerRequest.median.toFixed(1)} | ${summary.p99Ms.median.toFixed(2)} |`,
  );
  return [
    '## Token route, keep-alive (issue 11)',
    '',
    '| server | requests/s | server CPU µs/request | p99 ms |',
    '|---|---|---|---|',
    ...rows,
    '',
    `Token route ÷ same route without a token: server CPU per request **${result.serverCpuRatio.toFixed(2)}×**, ` +
      `requests/s ${result.requestsPerSecondRatio.toFixed(2)}× (medians; keys imported once per JWKS version, each request ` +
      'parses the header and verifies one ES256 signature through WebCrypto).',
    '',
  ].join('\n');
}
