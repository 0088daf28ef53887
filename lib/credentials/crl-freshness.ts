import type { RevocationList } from '../x509/crl.js';

/*
 * CRL freshness (RFC 5280 §5.2.3): a CRL must never be replaced by an older one of the same issuer. CRLs are public and
 * often fetched over plain HTTP, so anyone who kept an old, validly signed and still unexpired CRL could otherwise
 * un-revoke a certificate by getting it written over the current one. The order is the cRLNumber, which a CA increases
 * with every CRL; where either CRL lacks one (v1 CRLs), thisUpdate. Two different CRLs at the same position (same
 * number, or same thisUpdate without numbers) are a conflict and refused too: a CA never issues two, so one is forged or
 * the CA's numbering is broken, and neither is safe to prefer. An issuer is its Name plus, when the CRL carries one, the
 * authorityKeyIdentifier: a CA re-issued under the same name with a new key starts a sequence of its own.
 */

/** A CRL of a set, with the file it was read from (for messages). */
export interface CrlInFile {
  readonly crl: RevocationList;
  readonly file: string;
}

/** The newest CRL seen for one issuer: what any later CRL of that issuer must not go behind. */
export type CrlHighWaterMarks = ReadonlyMap<string, CrlInFile>;

/** How a candidate CRL compares with the newest one of its issuer. */
export type CrlOrder = 'newer' | 'same' | 'older' | 'conflict';

/** Why a set's CRLs are refused: one CRL goes behind (or contradicts) what is in force for its issuer. */
export interface CrlRegression {
  readonly kind: 'older' | 'conflict';
  /** The candidate CRL at fault. */
  readonly candidate: CrlInFile;
  /** The newest CRL of the same issuer seen so far. */
  readonly inForce: CrlInFile;
  /** One sentence naming the issuer and both positions. */
  readonly reason: string;
}

/** The key CRLs of one issuer share: issuer Name DER, plus the authority key identifier when the CRL has one. */
export function crlIssuerKey(crl: RevocationList): string {
  return `${crl.issuerDer.toString('hex')}/${crl.authorityKeyId ?? ''}`;
}

/** Orders `candidate` against `inForce` (same issuer): by cRLNumber when both have one, else by thisUpdate. */
export function compareCrls(candidate: RevocationList, inForce: RevocationList): CrlOrder {
  let order: number;
  if (candidate.crlNumber !== undefined && inForce.crlNumber !== undefined) {
    order = candidate.crlNumber === inForce.crlNumber ? 0 : candidate.crlNumber > inForce.crlNumber ? 1 : -1;
  } else {
    order = Math.sign(candidate.thisUpdate.getTime() - inForce.thisUpdate.getTime());
  }
  if (order > 0) return 'newer';
  if (order < 0) return 'older';
  return candidate.der.equals(inForce.der) ? 'same' : 'conflict';
}

/** Where a CRL stands in its issuer's sequence, as messages write it. */
export function crlPosition(crl: RevocationList): string {
  const issued = `issued ${crl.thisUpdate.toISOString()}`;
  return crl.crlNumber === undefined ? `${issued}, no cRLNumber` : `cRLNumber ${crl.crlNumber}, ${issued}`;
}

/**
 * The first CRL of `candidates` that goes behind the newest CRL of its issuer in `marks`, or contradicts it; undefined
 * when every CRL is the same, newer, or of an issuer not seen before. Pure: the caller keeps the marks.
 */
export function findCrlRegression(marks: CrlHighWaterMarks, candidates: readonly CrlInFile[]): CrlRegression | undefined {
  for (const candidate of candidates) {
    const inForce = marks.get(crlIssuerKey(candidate.crl));
    if (inForce === undefined) continue;
    const order = compareCrls(candidate.crl, inForce.crl);
    if (order === 'newer' || order === 'same') continue;
    const issuer = `"${candidate.crl.issuer}"`;
    const reason =
      order === 'older'
        ? `the CRL of ${issuer} (${crlPosition(candidate.crl)}) is older than the one in force (${crlPosition(inForce.crl)}, from ${inForce.file}); installing it would un-revoke what the newer CRL revokes`
        : `the CRL of ${issuer} (${crlPosition(candidate.crl)}) differs from the one in force at the same position (${crlPosition(inForce.crl)}, from ${inForce.file}); a CA never issues two different CRLs with one number`;
    return { kind: order, candidate, inForce, reason };
  }
  return undefined;
}

/** `marks` moved forward to the CRLs of an installed set; issuers the set no longer has keep their mark. */
export function advanceCrlHighWaterMarks(marks: CrlHighWaterMarks, installed: readonly CrlInFile[]): CrlHighWaterMarks {
  const next = new Map(marks);
  for (const entry of installed) {
    const key = crlIssuerKey(entry.crl);
    const current = next.get(key);
    if (current === undefined || compareCrls(entry.crl, current.crl) === 'newer') next.set(key, entry);
  }
  return next;
}
