/*
 * DNS names as this package compares them: ASCII only, case-folded (RFC 4343), letters, digits, `-` and `_` (service
 * labels such as `_grpc`) in labels of 1–63 characters, at most 253 characters, no trailing dot. Shared by the peer
 * identity (which normalises a peer's DNS SANs once per identity) and the DNS rule (which checks its names at startup).
 */

/** One label, lower case: `[a-z0-9_]`, inner `-`, 1–63 characters. */
const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Longest DNS name in text form (RFC 1035 §2.3.4, without the root's trailing dot). */
export const DNS_NAME_MAX_LENGTH = 253;

/**
 * The lower-cased form of `name` when it names one host, else undefined: non-ASCII text (Unicode case folding maps
 * U+212A KELVIN SIGN onto "k"), wildcards, empty labels, a trailing dot and over-long names name no host. With
 * `wildcard`, a leading `*.` label is allowed (a certificate's DNS SAN, not a peer's name).
 */
export function normalizeDnsName(name: string, options: { readonly wildcard?: boolean } = {}): string | undefined {
  if (options.wildcard === true && name.startsWith('*.')) {
    // A certificate's `*.shop.svc`: one leading wildcard label above at least two labels.
    const rest = normalizeDnsName(name.slice(2));
    return rest !== undefined && rest.includes('.') ? `*.${rest}` : undefined;
  }
  if (name.length === 0 || name.length > DNS_NAME_MAX_LENGTH) return undefined;
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) > 0x7e) return undefined;
  const lower = name.toLowerCase();
  let start = 0;
  for (;;) {
    const dot = lower.indexOf('.', start);
    const end = dot === -1 ? lower.length : dot;
    if (!DNS_LABEL.test(lower.slice(start, end))) return undefined;
    if (dot === -1) return lower;
    start = dot + 1;
  }
}
