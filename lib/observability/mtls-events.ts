import { Injectable } from '@nestjs/common';
import { Subject, type Observable } from 'rxjs';
import type { CredentialSetName, Credentials } from '../credentials/credentials.interfaces.js';
import type { CredentialsReloadEvent } from '../credentials/credentials-reloader.js';

export type { CredentialSetName } from '../credentials/credentials.interfaces.js';

/** Everything observable that happens to credentials and peers. Subscribe with `MtlsEvents.events$`. */
export type MtlsEvent =
  | { readonly type: 'credentials.loaded'; readonly set: CredentialSetName; readonly credentials: Credentials }
  | CredentialsReloadEvent
  | {
      readonly type: 'credentials.expiring';
      readonly set: CredentialSetName;
      readonly credentials: Credentials;
      readonly remainingMs: number;
    }
  | { readonly type: 'handshake.rejected'; readonly reason: string; readonly remoteAddress: string | undefined }
  | { readonly type: 'peer.denied'; readonly code: string; readonly route: string; readonly peer: string | undefined }
  | { readonly type: 'connection.revoked'; readonly reason: string; readonly peer: string | undefined }
  | {
      /** A bearer token was refused; `reason` is a stable label, `kid` and `sub` sanitised (never the token). */
      readonly type: 'token.rejected';
      readonly issuer: string;
      readonly code: string;
      readonly reason: string;
      readonly route: string;
      readonly peer: string | undefined;
      readonly kid: string | undefined;
      readonly sub: string | undefined;
    }
  | { readonly type: 'jwks.rotated'; readonly issuer: string }
  | { readonly type: 'jwks.refused'; readonly issuer: string; readonly error: Error }
  | { readonly type: 'jwks.stale'; readonly issuer: string; readonly ageMs: number };

/** The package's event bus: one per application, injectable. */
@Injectable()
export class MtlsEvents {
  readonly #subject = new Subject<MtlsEvent>();

  /** Every event, hot; late subscribers see only what comes after they subscribe. */
  readonly events$: Observable<MtlsEvent> = this.#subject.asObservable();

  /** @internal */
  emit(event: MtlsEvent): void {
    this.#subject.next(event);
  }

  /** @internal */
  complete(): void {
    this.#subject.complete();
  }
}
