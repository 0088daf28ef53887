import type { RotationResult } from './bench-results.js';

/** The Markdown section of the Workload API group, beside the file rotation when both ran. */
export function workloadApiSection(
  workloadApi: RotationResult | undefined,
  files: RotationResult | undefined,
  number: (value: number, digits: number) => string,
  table: (header: readonly string[], rows: ReadonlyArray<readonly string[]>) => string,
): string[] {
  if (workloadApi === undefined) return [];
  const rows = [
    [
      'Rotations timed',
      `${workloadApi.rotations} (${workloadApi.timeouts} not served within ${number(workloadApi.timeoutMs / 1000, 0)} s)`,
    ],
    ['Push → new certificate served, p50', `${number(workloadApi.p50Ms, 1)} ms`],
    ['Push → new certificate served, p99', `${number(workloadApi.p99Ms, 1)} ms`],
    ['Push → new certificate served, max', `${number(workloadApi.maxMs, 1)} ms`],
  ];
  if (files !== undefined) {
    rows.push(['File rotation p50 in the same run (debounced)', `${number(files.p50Ms, 0)} ms`]);
  }
  return [
    '### Workload API rotation',
    '',
    table(['Metric', 'Value'], rows),
    '',
    "Each rotation pushes a fresh X509-SVID from the testing kit's Workload API server (real gRPC on a Unix socket) to " +
      'a Nest app with `credentials: { workloadApi }`; the time runs from the push to the first new TLS connection ' +
      '(back-to-back handshakes from the same process) that is served the new leaf. No debounce: every message is the ' +
      'full state, validated and installed as it arrives.',
    '',
  ];
}
