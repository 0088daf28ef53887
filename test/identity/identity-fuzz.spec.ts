import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SpiffeIdError } from '../../lib/errors/mtls.errors.js';
import { normalizeDnsName } from '../../lib/identity/dns-name.js';
import { canonicalIp } from '../../lib/identity/ip-address.js';
import { isValidSpiffeId, parseSpiffeId, parseTrustDomain, spiffeIdError } from '../../lib/identity/spiffe-id.js';
import { hasSpiffeScheme } from '../../lib/identity/svid-rules.js';
import { describeThrown, mutateText, Prng, timed } from '../support/fuzz.js';

/*
 * Fuzzing the name parsers an identity is made of: SPIFFE IDs and trust domains, DNS names, IP addresses. Each is
 * checked against a reference written differently (regular expressions of SPIFFE-ID.md and RFC 1035, node:net), so a
 * disagreement on any mutated input fails: a value or SpiffeIdError, never another error, and no input accepted that
 * the grammar refuses.
 */

const SEED = 0x1de7_1717;
const CASES = 6000;

const SPIFFE_SEEDS = [
  'spiffe://shop.test/ns/shop/sa/orders',
  'spiffe://shop.test',
  'spiffe://a-b_c.d/x/y.z/_-',
  `spiffe://${'a'.repeat(255)}/p`,
  `spiffe://t/${'a'.repeat(2030)}`,
];
const SPIFFE_ALPHABET = '/./..:-_aZ09%@?#\u00e9\u212a\u0000 S';

/** SPIFFE-ID.md §2 as a regular expression: lower-case trust domain, non-empty segments that are not dot segments. */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

function referenceSpiffeIdValid(id: string): boolean {
  if (!id.startsWith('spiffe://') || id.length > 2048) return false;
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain) || trustDomain.length > 255) return false;
  if (slash < 0) return true;
  return rest
    .slice(slash + 1)
    .split('/')
    .every((segment) => SEGMENT.test(segment) && segment !== '.' && segment !== '..');
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function referenceDnsName(name: string): string | undefined {
  // ASCII only: toLowerCase would fold U+212A KELVIN SIGN onto "k".
  if (!/^[\x20-\x7e]+$/.test(name) || name.length > 253) return undefined;
  const lower = name.toLowerCase();
  return lower.split('.').every((label) => LABEL.test(label)) ? lower : undefined;
}

describe(`identity name fuzzing (seed 0x${SEED.toString(16)})`, () => {
  it('SPIFFE IDs: parse, spiffeIdError and isValidSpiffeId agree with the grammar, and a parsed ID prints as its input', () => {
    const rng = new Prng(SEED);
    const failures: string[] = [];
    let valid = 0;
    for (let i = 0; i < CASES; i++) {
      let id = rng.pick(SPIFFE_SEEDS);
      for (let k = 1 + rng.int(3); k > 0; k--) id = mutateText(rng, id, SPIFFE_ALPHABET);
      const parsed = timed(() => parseSpiffeId(id));
      const expected = referenceSpiffeIdValid(id);
      let problem: string | undefined;
      if (
        parsed.error !== undefined &&
        !(parsed.error instanceof SpiffeIdError && parsed.error.code === 'ERR_MTLS_SPIFFE_ID_INVALID')
      ) {
        problem = `threw ${describeThrown(parsed.error)}`;
      } else if ((parsed.error === undefined) !== expected) {
        problem = expected ? 'refused a valid ID' : 'accepted an invalid ID';
      } else if (parsed.value !== undefined && parsed.value.toString() !== id) {
        problem = `printed as ${parsed.value.toString()}`;
      } else if (isValidSpiffeId(id) !== expected || (spiffeIdError(id) === undefined) !== expected) {
        problem = 'isValidSpiffeId or spiffeIdError disagrees with parseSpiffeId';
      } else if (parsed.ms > 50) {
        problem = `took ${parsed.ms.toFixed(1)} ms`;
      }
      if (expected) valid++;
      const trustDomain = timed(() => parseTrustDomain(id));
      if (trustDomain.error !== undefined && !(trustDomain.error instanceof SpiffeIdError)) {
        problem ??= `parseTrustDomain threw ${describeThrown(trustDomain.error)}`;
      }
      if (trustDomain.value !== undefined && !TRUST_DOMAIN.test(trustDomain.value)) {
        problem ??= `parseTrustDomain returned ${JSON.stringify(trustDomain.value)}`;
      }
      if (hasSpiffeScheme(id) !== /^spiffe:/i.test(id)) problem ??= 'hasSpiffeScheme disagrees with /^spiffe:/i';
      if (problem !== undefined && failures.length < 20) failures.push(`${JSON.stringify(id.slice(0, 120))}: ${problem}`);
    }
    expect(valid).toBeGreaterThan(300);
    expect(failures).toEqual([]);
  });

  it('DNS names: normalizeDnsName agrees with RFC 1035 labels, is idempotent, and allows one leading wildcard only when asked', () => {
    const rng = new Prng(SEED + 1);
    const seeds = ['orders.shop.svc', 'Orders.Shop.SVC', '_grpc._tcp.shop', '*.shop.svc', `${'a'.repeat(63)}.b`, 'x'];
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      let name = rng.pick(seeds);
      for (let k = 1 + rng.int(3); k > 0; k--) name = mutateText(rng, name, '.-_*aZ09 \u212a\u0131\u00e9');
      const result = timed(() => normalizeDnsName(name));
      const wildcard = timed(() => normalizeDnsName(name, { wildcard: true }));
      let problem: string | undefined;
      if (result.error !== undefined || wildcard.error !== undefined)
        problem = `threw ${describeThrown(result.error ?? wildcard.error)}`;
      else if (result.value !== referenceDnsName(name))
        problem = `gave ${JSON.stringify(result.value)}, expected ${JSON.stringify(referenceDnsName(name))}`;
      else if (result.value !== undefined && normalizeDnsName(result.value) !== result.value) problem = 'not idempotent';
      else if (wildcard.value !== undefined && wildcard.value.startsWith('*.')) {
        const rest = referenceDnsName(name.slice(2));
        if (rest === undefined || !rest.includes('.') || wildcard.value !== `*.${rest}`)
          problem = `wildcard ${wildcard.value} accepted`;
      } else if (wildcard.value !== result.value) problem = 'wildcard option changed a name without wildcard';
      if (problem !== undefined && failures.length < 20) failures.push(`${JSON.stringify(name.slice(0, 120))}: ${problem}`);
    }
    expect(failures).toEqual([]);
  });

  it('IP addresses: canonicalIp never throws, keeps the family, is idempotent, and drops zone IDs', () => {
    const rng = new Prng(SEED + 2);
    const seeds = ['127.0.0.1', '10.0.0.255', '::1', '2001:db8::1', '::ffff:192.0.2.1', 'fe80::1%eth0', '2001:DB8:0:0:1:0:0:1'];
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      let ip = rng.pick(seeds);
      for (let k = 1 + rng.int(2); k > 0; k--) ip = mutateText(rng, ip, '.:%0129afAF[]/ ');
      const result = timed(() => canonicalIp(ip));
      let problem: string | undefined;
      if (result.error !== undefined) problem = `threw ${describeThrown(result.error)}`;
      else if (result.value !== undefined) {
        if (isIP(result.value) !== isIP(ip)) problem = `family changed: ${result.value}`;
        else if (canonicalIp(result.value) !== result.value) problem = 'not idempotent';
        else if (result.value.includes('%')) problem = 'kept a zone ID';
      } else if (isIP(ip) !== 0 && !ip.includes('%')) problem = 'refused a valid address';
      if (problem !== undefined && failures.length < 20) failures.push(`${JSON.stringify(ip)}: ${problem}`);
    }
    expect(failures).toEqual([]);
  });
});
