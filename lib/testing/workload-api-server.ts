import { createPrivateKey, createSign, generateKeyPairSync, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import {
  decodeJwtSvidRequest,
  encodeJwtBundlesResponse,
  encodeJwtSvidResponse,
  encodeX509BundlesResponse,
  encodeX509SvidResponse,
  WORKLOAD_API_METHODS,
  type X509SvidMessage,
} from '../workload-api/workload-api.codec.js';
import { WORKLOAD_API_METADATA } from '../workload-api/workload-api.transport.js';
import type { TestPeer } from './test-pki.js';

/** One X509-SVID the test server hands out: a minted peer (chain, key, its CA's bundle), with an optional hint. */
export interface TestX509Svid {
  readonly peer: Pick<TestPeer, 'chainPem' | 'keyPem' | 'caPem' | 'spiffeId'>;
  readonly hint?: string;
}

/** How the server answers new calls (and ends the open ones) instead of serving. */
export type WorkloadApiRefusal = 'permission-denied' | 'invalid-argument' | 'unavailable';

type Call = Grpc.ServerWritableStream<Buffer, Buffer>;

/** A JWT-SVID signing authority of one trust domain. */
interface JwtAuthority {
  readonly kid: string;
  readonly key: KeyObject;
  readonly jwk: Record<string, unknown>;
}

const GRPC_CODES: Record<WorkloadApiRefusal, number> = { 'invalid-argument': 3, 'permission-denied': 7, unavailable: 14 };

function certificatesDer(pem: string): Buffer {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return Buffer.concat(blocks.map((block) => new X509Certificate(block).raw));
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A SPIFFE Workload API server for tests: real gRPC on a temporary Unix socket, driven by the test. Serve an SVID,
 * rotate it, add or remove federated bundles, answer `PermissionDenied`, go away and come back, mint JWT-SVIDs.
 * Like the SPIRE agent, it refuses calls without the `workload.spiffe.io: true` metadata with `InvalidArgument`.
 * @example
 * ```ts
 * const agent = await WorkloadApiTestServer.start();
 * agent.setSvids([{ peer: await pki.peer({ spiffeId, ipAddresses: ['127.0.0.1'] }) }]);
 * MtlsModule.forRoot({ credentials: { workloadApi: { socket: agent.address } } });
 * ```
 */
export class WorkloadApiTestServer {
  readonly #dir: string;
  /** The socket file. */
  readonly socketPath: string;
  #grpc: typeof Grpc;
  #server: Grpc.Server | undefined;
  readonly #x509Calls = new Set<Call>();
  readonly #bundleCalls = new Set<Call>();
  readonly #jwtBundleCalls = new Set<Call>();
  #svids: readonly TestX509Svid[] = [];
  readonly #federated = new Map<string, string>();
  #crlsDer: readonly Buffer[] = [];
  #refusal: WorkloadApiRefusal | undefined;
  readonly #jwtAuthorities = new Map<string, JwtAuthority>();
  /** JWT bundles set as documents, by trust domain; `null`: the trust domain has none, whatever its authority. */
  readonly #jwtBundles = new Map<string, object | null>();
  #jwtTtlSeconds = 300;
  /** Counts of calls received, by method name (`FetchX509SVID`, `FetchJWTSVID`, …). */
  readonly calls = new Map<string, number>();
  /** The metadata value of `workload.spiffe.io` on the last call (undefined when absent). */
  lastSecurityHeader: string | undefined;

  private constructor(grpc: typeof Grpc, dir: string) {
    this.#grpc = grpc;
    this.#dir = dir;
    this.socketPath = join(dir, 'agent.sock');
  }

  /** Starts a server on a new temporary socket. */
  static async start(): Promise<WorkloadApiTestServer> {
    const grpc = await import('@grpc/grpc-js');
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-wlapi-'));
    const server = new WorkloadApiTestServer(grpc, dir);
    await server.comeBack();
    return server;
  }

  /** `unix:///…/agent.sock`: pass as `workloadApi.socket` or `SPIFFE_ENDPOINT_SOCKET`. */
  get address(): string {
    return `unix://${this.socketPath}`;
  }

  /** Serves these X509-SVIDs (first = default) and pushes the new state to every open stream. */
  setSvids(svids: readonly TestX509Svid[]): void {
    this.#svids = svids;
    this.#pushX509();
  }

  /** Adds or replaces (PEM) or removes (undefined) the federated bundle of a trust domain; pushes the new state. */
  setFederatedBundle(trustDomain: string, bundlePem: string | undefined): void {
    if (bundlePem === undefined) this.#federated.delete(trustDomain);
    else this.#federated.set(trustDomain, bundlePem);
    this.#pushX509();
  }

  /** Sets the CRLs (PEM) sent with every response; pushes the new state. */
  setCrls(crlPems: readonly string[]): void {
    this.#crlsDer = crlPems.map((pem) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64'));
    this.#pushX509();
  }

  /**
   * Refuses every new call with this status and ends the open streams with it (`permission-denied`: the workload is
   * not registered; `invalid-argument`: a malformed request). `undefined` serves again (open streams reconnect).
   */
  refuse(refusal: WorkloadApiRefusal | undefined): void {
    this.#refusal = refusal;
    if (refusal === undefined) return;
    for (const calls of [this.#x509Calls, this.#bundleCalls, this.#jwtBundleCalls]) {
      for (const call of calls) this.#fail(call, refusal);
      calls.clear();
    }
  }

  /** Makes this server a JWT-SVID issuer for `trustDomain` (a fresh ES256 key); returns the key id. */
  addJwtAuthority(trustDomain: string): string {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kid = randomUUID();
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'jwt-svid', alg: 'ES256' };
    this.#jwtAuthorities.set(trustDomain, { kid, key: privateKey, jwk });
    this.#pushJwtBundles();
    return kid;
  }

  /**
   * Serves `jwks` (a JWKS document, e.g. `{ keys: [{ …, kid, use: 'jwt-svid' }] }`) as the JWT bundle of `trustDomain`
   * instead of its authority's key, or no bundle for it (`null`); `undefined` goes back to the authority's. Pushes
   * the new state. For key rotation, foreign keys and malformed bundles; JWT-SVIDs minted by FetchJWTSVID are still
   * signed by the authority.
   */
  setJwtBundle(trustDomain: string, jwks: object | null | undefined): void {
    if (jwks === undefined) this.#jwtBundles.delete(trustDomain);
    else this.#jwtBundles.set(trustDomain, jwks);
    this.#pushJwtBundles();
  }

  /** Lifetime of minted JWT-SVIDs. @default 300 */
  set jwtTtlSeconds(seconds: number) {
    this.#jwtTtlSeconds = seconds;
  }

  /** Closes the socket and ends every call, as an agent restart does. */
  async goAway(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#x509Calls.clear();
    this.#bundleCalls.clear();
    this.#jwtBundleCalls.clear();
    if (server !== undefined) server.forceShutdown();
    await rm(this.socketPath, { force: true });
  }

  /** Listens again on the same socket (after {@link goAway}). */
  async comeBack(): Promise<void> {
    if (this.#server !== undefined) return;
    const grpc = this.#grpc;
    const server = new grpc.Server();
    const raw = {
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    };
    const stream = (path: string) => ({ path, requestStream: false, responseStream: true, ...raw });
    const unary = (path: string) => ({ path, requestStream: false, responseStream: false, ...raw });
    server.addService(
      {
        FetchX509SVID: stream(WORKLOAD_API_METHODS.fetchX509Svid),
        FetchX509Bundles: stream(WORKLOAD_API_METHODS.fetchX509Bundles),
        FetchJWTBundles: stream(WORKLOAD_API_METHODS.fetchJwtBundles),
        FetchJWTSVID: unary(WORKLOAD_API_METHODS.fetchJwtSvid),
      },
      {
        FetchX509SVID: (call: Call) => this.#openStream('FetchX509SVID', call, this.#x509Calls, () => this.#x509Message()),
        FetchX509Bundles: (call: Call) =>
          this.#openStream('FetchX509Bundles', call, this.#bundleCalls, () => this.#bundlesMessage()),
        FetchJWTBundles: (call: Call) =>
          this.#openStream('FetchJWTBundles', call, this.#jwtBundleCalls, () => this.#jwtBundlesMessage()),
        FetchJWTSVID: (call: Grpc.ServerUnaryCall<Buffer, Buffer>, callback: Grpc.sendUnaryData<Buffer>) =>
          this.#fetchJwtSvid(call, callback),
      },
    );
    await rm(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(this.address, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())),
    );
    this.#server = server;
  }

  /** Stops the server and removes its temporary directory. */
  async close(): Promise<void> {
    await this.goAway();
    await rm(this.#dir, { recursive: true, force: true });
  }

  #admit(method: string, metadata: Grpc.Metadata): WorkloadApiRefusal | undefined {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const header = metadata.get(WORKLOAD_API_METADATA.key)[0];
    this.lastSecurityHeader = header === undefined ? undefined : String(header);
    if (this.lastSecurityHeader !== WORKLOAD_API_METADATA.value) return 'invalid-argument';
    return this.#refusal;
  }

  #fail(call: Call, refusal: WorkloadApiRefusal): void {
    call.emit('error', { code: GRPC_CODES[refusal], details: `test server: ${refusal}` });
  }

  #openStream(method: string, call: Call, calls: Set<Call>, message: () => Buffer | undefined): void {
    const refusal = this.#admit(method, call.metadata);
    if (refusal !== undefined) return this.#fail(call, refusal);
    calls.add(call);
    call.on('cancelled', () => calls.delete(call));
    call.on('close', () => calls.delete(call));
    const first = message();
    if (first !== undefined) call.write(first);
  }

  #x509Message(): Buffer | undefined {
    if (this.#svids.length === 0) return undefined;
    const svids: X509SvidMessage[] = this.#svids.map(({ peer, hint }) => ({
      spiffeId: peer.spiffeId ?? '',
      certificates: certificatesDer(peer.chainPem),
      key: createPrivateKey(peer.keyPem).export({ type: 'pkcs8', format: 'der' }),
      bundle: certificatesDer(peer.caPem),
      hint: hint ?? '',
    }));
    const federatedBundles = new Map([...this.#federated].map(([td, pem]) => [`spiffe://${td}`, certificatesDer(pem)]));
    return encodeX509SvidResponse({ svids, crl: this.#crlsDer, federatedBundles });
  }

  #bundlesMessage(): Buffer | undefined {
    const own = this.#svids[0];
    if (own === undefined) return undefined;
    const home = (own.peer.spiffeId ?? '').replace(/^spiffe:\/\/([^/]+).*$/, '$1');
    const bundles = new Map([[`spiffe://${home}`, certificatesDer(own.peer.caPem)]]);
    for (const [td, pem] of this.#federated) bundles.set(`spiffe://${td}`, certificatesDer(pem));
    return encodeX509BundlesResponse({ crl: this.#crlsDer, bundles });
  }

  #jwtBundlesMessage(): Buffer | undefined {
    if (this.#jwtAuthorities.size === 0 && this.#jwtBundles.size === 0) return undefined;
    const documents = new Map<string, object | null>(
      [...this.#jwtAuthorities].map(([td, authority]) => [td, { keys: [authority.jwk] }]),
    );
    for (const [td, jwks] of this.#jwtBundles) documents.set(td, jwks);
    const bundles = new Map(
      [...documents].flatMap(([td, jwks]) =>
        jwks === null ? [] : [[`spiffe://${td}`, Buffer.from(JSON.stringify(jwks))] as const],
      ),
    );
    return encodeJwtBundlesResponse({ bundles });
  }

  #pushX509(): void {
    const x509 = this.#x509Message();
    if (x509 !== undefined) for (const call of this.#x509Calls) call.write(x509);
    const bundles = this.#bundlesMessage();
    if (bundles !== undefined) for (const call of this.#bundleCalls) call.write(bundles);
  }

  #pushJwtBundles(): void {
    const message = this.#jwtBundlesMessage();
    if (message !== undefined) for (const call of this.#jwtBundleCalls) call.write(message);
  }

  #fetchJwtSvid(call: Grpc.ServerUnaryCall<Buffer, Buffer>, callback: Grpc.sendUnaryData<Buffer>): void {
    const refusal = this.#admit('FetchJWTSVID', call.metadata);
    if (refusal !== undefined) return callback({ code: GRPC_CODES[refusal], details: `test server: ${refusal}` });
    const request = decodeJwtSvidRequest(call.request);
    if (request.audience.length === 0)
      return callback({ code: GRPC_CODES['invalid-argument'], details: 'audience must be specified' });
    const svids = this.#svids
      .filter(({ peer }) => request.spiffeId === '' || peer.spiffeId === request.spiffeId)
      .flatMap(({ peer, hint }) => {
        const spiffeId = peer.spiffeId ?? '';
        const authority = this.#jwtAuthorities.get(spiffeId.replace(/^spiffe:\/\/([^/]+).*$/, '$1'));
        if (authority === undefined) return [];
        return [{ spiffeId, svid: this.#mint(authority, spiffeId, request.audience), hint: hint ?? '' }];
      });
    if (svids.length === 0) return callback({ code: GRPC_CODES['permission-denied'], details: 'no identity issued' });
    callback(null, encodeJwtSvidResponse({ svids }));
  }

  #mint(authority: JwtAuthority, subject: string, audience: readonly string[]): string {
    const now = Math.floor(Date.now() / 1000);
    const header = base64url(JSON.stringify({ alg: 'ES256', kid: authority.kid, typ: 'JWT' }));
    const claims = base64url(JSON.stringify({ sub: subject, aud: audience, iat: now, exp: now + this.#jwtTtlSeconds }));
    const signature = createSign('SHA256').update(`${header}.${claims}`).sign({ key: authority.key, dsaEncoding: 'ieee-p1363' });
    return `${header}.${claims}.${base64url(signature)}`;
  }
}
