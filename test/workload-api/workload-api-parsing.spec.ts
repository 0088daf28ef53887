import { describe, expect, it } from 'vitest';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { Backoff } from '../../lib/workload-api/workload-api.backoff.js';
import {
  decodeJwtSvidRequest,
  decodeX509BundlesResponse,
  decodeX509SvidResponse,
  encodeJwtSvidRequest,
  encodeX509BundlesResponse,
  encodeX509SvidResponse,
  ProtobufDecodeError,
} from '../../lib/workload-api/workload-api.codec.js';
import { parseWorkloadApiEndpoint, resolveWorkloadApiEndpoint } from '../../lib/workload-api/workload-api.endpoint.js';

describe('parseWorkloadApiEndpoint (SPIFFE Workload Endpoint §4)', () => {
  it.each([
    ['unix:///run/spire/agent.sock', 'unix:///run/spire/agent.sock'],
    ['unix:/run/spire/agent.sock', 'unix:///run/spire/agent.sock'],
    ['tcp://127.0.0.1:8081', 'ipv4:127.0.0.1:8081'],
    ['tcp://[::1]:8081', 'ipv6:[::1]:8081'],
  ])('%s → gRPC target %s', (address, target) => {
    expect(parseWorkloadApiEndpoint(address, 'X')).toEqual({ address, target });
  });

  it.each([
    ['', 'is empty'],
    ['/run/spire/agent.sock', 'is not a URI'],
    ['unix://host/run/agent.sock', 'names a host'],
    ['unix:relative.sock', 'has no absolute socket path'],
    ['unix:///run/agent.sock?x=1', 'must not carry a query, fragment or user info'],
    ['unix:///run/agent.sock#frag', 'must not carry a query, fragment or user info'],
    ['tcp://spire-agent:8081', 'must name an IP address, not a host name'],
    ['tcp://127.0.0.1', 'has no port'],
    ['tcp://127.0.0.1:8081/path', 'must not have a path'],
    ['tcp://user@127.0.0.1:8081', 'must not carry a query, fragment or user info'],
    ['http://127.0.0.1:8081', 'has scheme "http"'],
  ])('refuses %j: %s', (address, problem) => {
    expect(() => parseWorkloadApiEndpoint(address, 'MtlsModule option "credentials.workloadApi.socket"')).toThrow(
      expect.objectContaining({
        code: 'ERR_MTLS_CONFIG_INVALID',
        message: expect.stringContaining(
          `MtlsModule option "credentials.workloadApi.socket" ${JSON.stringify(address)} ${problem}`,
        ),
      }),
    );
  });

  it('falls back to SPIFFE_ENDPOINT_SOCKET, and names it when missing or malformed', () => {
    expect(
      resolveWorkloadApiEndpoint(undefined, 'credentials.workloadApi', { SPIFFE_ENDPOINT_SOCKET: 'unix:///a.sock' }).target,
    ).toBe('unix:///a.sock');
    expect(() => resolveWorkloadApiEndpoint(undefined, 'credentials.workloadApi', {})).toThrow(
      /SPIFFE_ENDPOINT_SOCKET is not set/,
    );
    expect(() =>
      resolveWorkloadApiEndpoint(undefined, 'credentials.workloadApi', { SPIFFE_ENDPOINT_SOCKET: 'tcp://x:1' }),
    ).toThrow(
      /^SPIFFE_ENDPOINT_SOCKET \(for MtlsModule option "credentials.workloadApi"\) "tcp:\/\/x:1" must name an IP address/,
    );
  });
});

describe('credentials: { workloadApi } options', () => {
  const resolve = (credentials: unknown) => resolveMtlsOptions({ credentials } as never);
  it('resolves socket, svid and startupTimeoutMs', () => {
    const options = resolve({ workloadApi: { socket: 'unix:///a.sock', svid: 'internal', startupTimeoutMs: 5 } });
    expect(options.workloadApi).toEqual({
      endpoint: { address: 'unix:///a.sock', target: 'unix:///a.sock' },
      svid: 'internal',
      startupTimeoutMs: 5,
    });
    expect(options.credentialFiles.cert).toBe('Workload API unix:///a.sock X509-SVID');
  });
  it.each([
    [{ workloadApi: { socket: 'unix:///a.sock' }, dir: '/x' }, 'mixes workloadApi with "dir"'],
    [{ workloadApi: { sock: 'unix:///a.sock' } }, '"credentials.workloadApi.sock" is not an option'],
    [
      { workloadApi: { socket: 'unix:///a.sock', svid: '' } },
      '"credentials.workloadApi.svid" must be a non-empty hint or SPIFFE ID',
    ],
    [{ workloadApi: { socket: 'unix:///a.sock', startupTimeoutMs: 0 } }, '"credentials.workloadApi.startupTimeoutMs" is 0'],
    [{ workloadApi: null }, '"credentials.workloadApi" must be an object'],
  ])('refuses %j', (credentials, message) => {
    expect(() => resolve(credentials)).toThrow(
      expect.objectContaining({ code: 'ERR_MTLS_CONFIG_INVALID', message: expect.stringContaining(message) }),
    );
  });
});

describe('Workload API codec', () => {
  const svid = {
    spiffeId: 'spiffe://a/b',
    certificates: Buffer.from([0x30, 0]),
    key: Buffer.from([1, 2, 3]),
    bundle: Buffer.from([0x30, 0]),
    hint: 'h',
  };

  it('round-trips X509SVIDResponse and X509BundlesResponse', () => {
    const message = {
      svids: [svid, { ...svid, hint: '' }],
      crl: [Buffer.from([9])],
      federatedBundles: new Map([['spiffe://c', Buffer.from([7])]]),
    };
    const decoded = decodeX509SvidResponse(encodeX509SvidResponse(message));
    expect(decoded.svids).toEqual(message.svids);
    expect(decoded.crl).toEqual(message.crl);
    expect([...decoded.federatedBundles]).toEqual([...message.federatedBundles]);
    const bundles = { crl: [], bundles: new Map([['spiffe://a', Buffer.from([1])]]) };
    expect([...decodeX509BundlesResponse(encodeX509BundlesResponse(bundles)).bundles]).toEqual([...bundles.bundles]);
    expect(decodeJwtSvidRequest(encodeJwtSvidRequest({ audience: ['x', 'y'], spiffeId: '' }))).toEqual({
      audience: ['x', 'y'],
      spiffeId: '',
    });
  });

  it('skips unknown fields of every wire type', () => {
    const unknown = Buffer.from([
      (9 << 3) | 0,
      0x96,
      0x01, // varint
      (10 << 3) | 1,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // fixed64
      (11 << 3) | 2,
      2,
      0xaa,
      0xbb, // bytes
      (12 << 3) | 5,
      1,
      2,
      3,
      4, // fixed32
    ]);
    const decoded = decodeX509SvidResponse(
      Buffer.concat([unknown, encodeX509SvidResponse({ svids: [svid], crl: [], federatedBundles: new Map() })]),
    );
    expect(decoded.svids).toHaveLength(1);
  });

  it.each([
    ['a truncated length', Buffer.from([(1 << 3) | 2, 10, 1])],
    ['an overlong varint', Buffer.from([(9 << 3) | 0, ...Array(11).fill(0xff)])],
    // Found by fuzzing: ten bytes hold 70 bits; a 64-bit varint's tenth byte is 0 or 1 (protobuf, Go's protowire).
    ['a varint beyond 64 bits', Buffer.from([(9 << 3) | 0, ...Array(9).fill(0xff), 0x02])],
    ['a length beyond 64 bits', Buffer.from([(1 << 3) | 2, ...Array(9).fill(0x80), 0x7f])],
    ['svids with the varint wire type', Buffer.from([(1 << 3) | 0, 1])],
    ['a group wire type', Buffer.from([(1 << 3) | 3])],
    ['field number 0', Buffer.from([0x02, 0])],
    ['a spiffe_id that is not UTF-8', Buffer.from([(1 << 3) | 2, 3, (1 << 3) | 2, 1, 0xff])],
  ])('refuses %s, and zeroes the message', (_, bytes) => {
    const message = Buffer.from(bytes);
    expect(() => decodeX509SvidResponse(message)).toThrow(ProtobufDecodeError);
    expect(message.every((b) => b === 0)).toBe(true);
  });
});

describe('Backoff', () => {
  it('doubles up to the maximum with jitter in [base/2, base], and resets', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 400, random: () => 0 });
    expect([low.next(), low.next(), low.next(), low.next()]).toEqual([50, 100, 200, 200]);
    const high = new Backoff({ initialMs: 100, maxMs: 400, random: () => 0.999999 });
    expect([high.next(), high.next(), high.next()]).toEqual([100, 200, 400]);
    high.reset();
    expect(high.next()).toBe(100);
  });
});
