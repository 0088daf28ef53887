import { isIP } from 'node:net';

/*
 * Who may speak for callers in proxy mode. Pure functions over addresses and identities: the Nest layer applies them.
 */

/** True for an IP address on the loopback interface: 127.0.0.0/8, ::1, and IPv4-mapped 127.x (`::ffff:127.0.0.6`). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const mapped = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(mapped) === 4) return mapped.startsWith('127.');
  if (isIP(address) !== 6) return false;
  // Every spelling of ::1 (`0:0:0:0:0:0:0:1`, `::0001`): all groups zero but a last group of 1.
  const groups = address.split(':');
  const last = groups.pop();
  return last !== undefined && /^0*1$/.test(last) && groups.every((group) => /^0*$/.test(group));
}

/** The header lines a proxy mode reads, lower-case. */
export const PROXY_HEADER_NAMES = {
  xfcc: ['x-forwarded-client-cert'],
  rfc9440: ['client-cert', 'client-cert-chain'],
} as const;

/** True when `name` equals the lower-case `lower`, ignoring ASCII case; allocation-free. */
function sameName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = name.charCodeAt(i);
    // Header names are tokens; `| 0x20` folds A-Z and maps no other token character onto a lower-case letter or '-'.
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * The raw value of each named header and how many lines carried it, from Node's `rawHeaders` (the parsed `headers`
 * object joins repeated lines with ", ", which would turn a client's line plus the proxy's into one valid-looking XFCC).
 */
export function headerLines(
  rawHeaders: readonly string[],
  names: readonly string[],
): { readonly values: (string | undefined)[]; readonly counts: number[] } {
  const values: (string | undefined)[] = names.map(() => undefined);
  const counts = names.map(() => 0);
  for (let k = 0; k < rawHeaders.length; k += 2) {
    const name = rawHeaders[k]!;
    for (let h = 0; h < names.length; h++) {
      if (sameName(name, names[h]!)) {
        counts[h]!++;
        values[h] = rawHeaders[k + 1];
      }
    }
  }
  return { values, counts };
}
