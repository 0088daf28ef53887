// CONTRACT STUB — implemented by the identity helper. Keep these signatures.
import { SpiffeIdError } from '../errors/mtls.errors.js';

/** A parsed, valid SPIFFE ID (SPIFFE-ID.md §2). Immutable; compare with `equals` or by `toString()`. */
export class SpiffeId {
  private constructor(
    /** Trust domain name, e.g. `shop.test`. */
    readonly trustDomain: string,
    /** Path including the leading slash, or `''` for the trust domain's own ID. */
    readonly path: string,
  ) {}

  /** @internal Built only by the parsing functions below, after validation. */
  static unsafeCreate(trustDomain: string, path: string): SpiffeId {
    return new SpiffeId(trustDomain, path);
  }

  /** `spiffe://<trustDomain><path>` */
  toString(): string {
    return `spiffe://${this.trustDomain}${this.path}`;
  }

  toJSON(): string {
    return this.toString();
  }

  equals(other: SpiffeId): boolean {
    return this.trustDomain === other.trustDomain && this.path === other.path;
  }

  /** True when this ID belongs to the given trust domain name. */
  memberOf(trustDomain: string): boolean {
    return this.trustDomain === trustDomain;
  }
}

/** Parses a SPIFFE ID with go-spiffe's rules (`spiffeid.FromString`); throws {@link SpiffeIdError} with go-spiffe's message. */
export function parseSpiffeId(input: string): SpiffeId {
  throw new SpiffeIdError(`not implemented: ${input}`);
}

/** Parses a trust domain name, or the trust domain of a SPIFFE ID (`spiffeid.TrustDomainFromString`). */
export function parseTrustDomain(input: string): string {
  throw new SpiffeIdError(`not implemented: ${input}`);
}
