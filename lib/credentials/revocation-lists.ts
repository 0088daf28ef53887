import { parseCrlPem, type RevocationList } from '../x509/crl.js';
import type { Credentials } from './credentials.interfaces.js';

const byCredentials = new WeakMap<Credentials, readonly RevocationList[]>();

/**
 * The parsed CRLs of a validated set, one per entry of `credentials.crlPems`: the way to get a set's CRLs (never parse
 * `crlPems` again). Validation hands over the lists it parsed, so this costs a lookup; a copy of the set made with
 * spread is parsed once and cached.
 */
export function revocationListsOf(credentials: Credentials): readonly RevocationList[] {
  let lists = byCredentials.get(credentials);
  if (lists === undefined) {
    lists = Object.freeze(
      credentials.crlPems.flatMap((pem) => {
        const parsed = parseCrlPem(pem);
        return parsed.ok ? [parsed.crl] : [];
      }),
    );
    byCredentials.set(credentials, lists);
  }
  return lists;
}

/** Records the CRLs validation parsed for `credentials`, so {@link revocationListsOf} does not parse them again. */
export function rememberRevocationLists(credentials: Credentials, lists: readonly RevocationList[]): void {
  byCredentials.set(credentials, Object.freeze([...lists]));
}
