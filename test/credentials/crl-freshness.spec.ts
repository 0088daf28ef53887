import { describe, expect, it } from 'vitest';
import type { RevocationList } from '../../lib/x509/crl.js';
import {
  advanceCrlHighWaterMarks,
  compareCrls,
  crlIssuerKey,
  findCrlRegression,
  type CrlInFile,
  type CrlOrder,
} from '../../lib/credentials/crl-freshness.js';

interface Fixture {
  number?: bigint;
  thisUpdate?: string;
  issuer?: string;
  aki?: string;
  /** Stands for the signed content: equal bodies mean the same CRL. */
  body?: string;
}

/** A parsed CRL with only what the freshness rule reads; `der` stands for the content. */
function crl({ number, thisUpdate = '2026-01-01T00:00:00Z', issuer = 'CA', aki, body = 'a' }: Fixture): RevocationList {
  const issuerDer = Buffer.from(issuer);
  return {
    der: Buffer.from(`${issuer}|${number}|${thisUpdate}|${aki}|${body}`),
    issuer: `CN=${issuer}`,
    issuerDer,
    thisUpdate: new Date(thisUpdate),
    nextUpdate: undefined,
    crlNumber: number,
    authorityKeyId: aki,
    revokedSerials: new Set(),
    tbs: Buffer.alloc(0),
    signature: Buffer.alloc(0),
    hash: 'sha256',
  };
}

const inFile = (list: RevocationList, file = '/crl/ca.crl'): CrlInFile => ({ crl: list, file });
const marksOf = (...lists: RevocationList[]) =>
  advanceCrlHighWaterMarks(
    new Map(),
    lists.map((list) => inFile(list, '/old/ca.crl')),
  );

describe('compareCrls (candidate against the CRL in force, same issuer)', () => {
  const cases: Array<[name: string, candidate: Fixture, inForce: Fixture, expected: CrlOrder]> = [
    ['a higher cRLNumber', { number: 8n }, { number: 7n }, 'newer'],
    ['a lower cRLNumber', { number: 6n }, { number: 7n }, 'older'],
    ['the same CRL again', { number: 7n }, { number: 7n }, 'same'],
    ['another CRL claiming the same number', { number: 7n, body: 'b' }, { number: 7n }, 'conflict'],
    // The number decides when both have one: thisUpdate is the CA's clock, which may step back.
    ['a higher number with an earlier thisUpdate', { number: 8n, thisUpdate: '2025-12-31T00:00:00Z' }, { number: 7n }, 'newer'],
    ['a lower number with a later thisUpdate', { number: 6n, thisUpdate: '2026-01-02T00:00:00Z' }, { number: 7n }, 'older'],
    ['numbers beyond 2^64 (20-octet cRLNumbers)', { number: 2n ** 150n + 1n }, { number: 2n ** 150n }, 'newer'],
    ['no numbers, later thisUpdate', { thisUpdate: '2026-01-02T00:00:00Z' }, {}, 'newer'],
    ['no numbers, earlier thisUpdate', { thisUpdate: '2025-12-31T00:00:00Z' }, {}, 'older'],
    ['no numbers, same thisUpdate, same CRL', {}, {}, 'same'],
    ['no numbers, same thisUpdate, different CRL', { body: 'b' }, {}, 'conflict'],
    ['the candidate lost its number and is older', { thisUpdate: '2025-12-31T00:00:00Z' }, { number: 7n }, 'older'],
    ['the candidate lost its number and is newer', { thisUpdate: '2026-01-02T00:00:00Z' }, { number: 7n }, 'newer'],
    ['the candidate gained a number and is older', { number: 1n, thisUpdate: '2025-12-31T00:00:00Z' }, {}, 'older'],
  ];

  it.each(cases)('%s', (_name, candidate, inForce, expected) => {
    expect(compareCrls(crl(candidate), crl(inForce))).toBe(expected);
  });
});

describe('findCrlRegression', () => {
  it('names the issuer, both positions and the file of the CRL in force', () => {
    const regression = findCrlRegression(marksOf(crl({ number: 7n })), [
      inFile(crl({ number: 5n, thisUpdate: '2025-12-01T00:00:00Z' })),
    ]);
    expect(regression?.kind).toBe('older');
    expect(regression?.candidate.file).toBe('/crl/ca.crl');
    expect(regression?.reason).toBe(
      'the CRL of "CN=CA" (cRLNumber 5, issued 2025-12-01T00:00:00.000Z) is older than the one in force (cRLNumber 7, issued 2026-01-01T00:00:00.000Z, from /old/ca.crl); installing it would un-revoke what the newer CRL revokes',
    );
  });

  it('refuses two different CRLs with one number', () => {
    const regression = findCrlRegression(marksOf(crl({ number: 7n })), [inFile(crl({ number: 7n, body: 'b' }))]);
    expect(regression?.kind).toBe('conflict');
    expect(regression?.reason).toMatch(
      /^the CRL of "CN=CA" \(cRLNumber 7, .*\) differs from the one in force at the same position \(cRLNumber 7, .*\); a CA never issues two different CRLs with one number$/,
    );
  });

  const accepted: Array<[name: string, marks: RevocationList[], candidates: RevocationList[]]> = [
    ['no CRL in force', [], [crl({ number: 1n })]],
    ['a CRL of a new issuer', [crl({ number: 7n })], [crl({ number: 7n }), crl({ issuer: 'Other CA', number: 1n })]],
    // A CA rebuilt under the same name with a new key starts its own sequence.
    ['the same name under another key', [crl({ number: 7n, aki: 'aa' })], [crl({ number: 1n, aki: 'bb' })]],
    [
      'an unchanged CRL next to a newer one of another issuer',
      [crl({ number: 7n }), crl({ issuer: 'B', number: 3n })],
      [crl({ number: 7n }), crl({ issuer: 'B', number: 4n })],
    ],
    ['a set without the issuer’s CRL (the high-water mark stays)', [crl({ number: 7n })], []],
  ];
  it.each(accepted)('accepts %s', (_name, marks, candidates) => {
    expect(
      findCrlRegression(
        marksOf(...marks),
        candidates.map((list) => inFile(list)),
      ),
    ).toBeUndefined();
  });

  it('checks every CRL of the set, not only the first', () => {
    const marks = marksOf(crl({ number: 7n }), crl({ issuer: 'B', number: 3n }));
    const regression = findCrlRegression(marks, [
      inFile(crl({ number: 8n })),
      inFile(crl({ issuer: 'B', number: 2n }), '/crl/b.crl'),
    ]);
    expect(regression?.candidate.file).toBe('/crl/b.crl');
  });
});

describe('advanceCrlHighWaterMarks', () => {
  it('keeps the newest CRL per issuer, across sets that drop an issuer', () => {
    let marks = marksOf(crl({ number: 7n }), crl({ issuer: 'B', number: 3n }));
    // A set without B's CRL, then one bringing back an older CRL of B: still refused.
    marks = advanceCrlHighWaterMarks(marks, [inFile(crl({ number: 8n }))]);
    expect(findCrlRegression(marks, [inFile(crl({ number: 8n })), inFile(crl({ issuer: 'B', number: 2n }))])?.kind).toBe('older');
    expect(marks.get(crlIssuerKey(crl({ number: 8n })))?.crl.crlNumber).toBe(8n);
  });

  it('never moves a mark backwards, even when handed an older CRL', () => {
    const marks = advanceCrlHighWaterMarks(marksOf(crl({ number: 7n })), [inFile(crl({ number: 5n }))]);
    expect(marks.get(crlIssuerKey(crl({})))?.crl.crlNumber).toBe(7n);
  });

  it('tells issuers apart by name and key identifier', () => {
    expect(crlIssuerKey(crl({ aki: 'aa' }))).not.toBe(crlIssuerKey(crl({ aki: 'bb' })));
    expect(crlIssuerKey(crl({ issuer: 'A' }))).not.toBe(crlIssuerKey(crl({ issuer: 'B' })));
    expect(crlIssuerKey(crl({ number: 1n }))).toBe(crlIssuerKey(crl({ number: 2n })));
  });
});
