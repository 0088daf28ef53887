// The token group: what `@RequireToken` adds to a guarded route, keep-alive, measured side by side with the same route
// without a token in the same run: one token on every request (a relayed user token during a session: verified once,
// then reused), and a different token on every request (each one verified in full).
import { caseResult, LABELS, type CaseResult } from './bench-results.js';
import type { LoadResult, ServerVariant } from './protocol.js';

/** The two servers compared: (c) and (c) + `@RequireToken`. */
export const TOKEN_SERVERS = ['mtls', 'mtls-token'] as const satisfies readonly ServerVariant[];

/** The group's cases: the route without a token, and the token route with one token or with a new token per request. */
export const TOKEN_CASES = ['mtls', 'mtls-token', 'mtls-token-distinct'] as const;
export type TokenCase = (typeof TOKEN_CASES)[number];

/** The server each case runs against. */
export const TOKEN_CASE_SERVER: Readonly<Record<TokenCase, (typeof TOKEN_SERVERS)[number]>> = {
  mtls: 'mtls',
  'mtls-token': 'mtls-token',
  'mtls-token-distinct': 'mtls-token',
};

/** How each case is labelled in the report. */
export const TOKEN_CASE_LABELS: Readonly<Record<TokenCase, string>> = {
  mtls: LABELS.mtls,
  'mtls-token': `${LABELS['mtls-token']}, the same token on every request`,
  'mtls-token-distinct': `${LABELS['mtls-token']}, a different token on every request`,
};

/** The token group's cases and its ratios. */
export interface TokenGroupResult {
  readonly keepAlive: Readonly<Record<TokenCase, CaseResult>>;
  /** Server CPU per request, token route (the same token) ÷ the same route without the token (medians over the rounds). */
  readonly serverCpuRatio: number;
  /** Requests per second, same order. */
  readonly requestsPerSecondRatio: number;
  /** Server CPU per request, token route with a different token per request ÷ the route without the token. */
  readonly distinctServerCpuRatio: number;
}

/** Summarises the rounds of the cases. */
export function tokenGroupResult(rounds: Readonly<Record<TokenCase, readonly LoadResult[]>>): TokenGroupResult {
  const keepAlive = Object.fromEntries(
    TOKEN_CASES.map((name) => [name, caseResult(TOKEN_CASE_LABELS[name], rounds[name])]),
  ) as Record<TokenCase, CaseResult>;
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : Number.NaN);
  const cpu = (name: TokenCase): number => keepAlive[name].summary.serverCpuUsPerRequest.median;
  return {
    keepAlive,
    serverCpuRatio: ratio(cpu('mtls-token'), cpu('mtls')),
    requestsPerSecondRatio: ratio(
      keepAlive['mtls-token'].summary.requestsPerSecond.median,
      keepAlive.mtls.summary.requestsPerSecond.median,
    ),
    distinctServerCpuRatio: ratio(cpu('mtls-token-distinct'), cpu('mtls')),
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
    `Token route ÷ same route without a token, server CPU per request (medians): the same token on every request ` +
      `**${result.serverCpuRatio.toFixed(2)}×** (requests/s ${result.requestsPerSecondRatio.toFixed(2)}×; verified once, ` +
      `then reused while its claims and key allow), a different token on every request ` +
      `**${result.distinctServerCpuRatio.toFixed(2)}×** (each verified in full: one ES256 signature through WebCrypto). ` +
      'Keys are imported once per JWKS version.',
    '',
  ].join('\n');
}
