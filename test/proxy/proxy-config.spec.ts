import { describe, expect, it } from 'vitest';
import { MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import type { MtlsModuleOptions } from '../../lib/mtls.options.js';

const credentials = { dir: '/var/run/secrets/tls' };
const PROXY = 'spiffe://shop.test/ns/edge/sa/envoy';

describe('resolveMtlsOptions: proxy', () => {
  it('is off by default: identities from the TLS connection', () => {
    expect(resolveMtlsOptions({ credentials }).proxy).toBeUndefined();
  });

  it('applies the defaults: last element, chain verified, text accepted, 64 KiB', () => {
    expect(resolveMtlsOptions({ credentials, proxy: { header: 'xfcc', trust: 'loopback' } }).proxy).toEqual({
      header: 'xfcc',
      trust: { kind: 'loopback' },
      element: 'last',
      verifyChain: true,
      requireCertificate: false,
      maxHeaderBytes: 65_536,
    });
    expect(resolveMtlsOptions({ credentials, proxy: { header: 'rfc9440', trust: { spiffeIds: [PROXY] } } }).proxy?.trust).toEqual(
      {
        kind: 'spiffe-ids',
        spiffeIds: new Set([PROXY]),
      },
    );
  });

  it.each<[string, unknown, RegExp]>([
    ['no header', { trust: 'loopback' }, /"proxy.header" is missing; use 'xfcc' or 'rfc9440'/],
    [
      'an unknown header',
      { header: 'x-client-cert', trust: 'loopback' },
      /"proxy.header" is "x-client-cert"; use one of 'xfcc', 'rfc9440'/,
    ],
    ['no trust', { header: 'xfcc' }, /"proxy.trust" is undefined; use 'loopback'/],
    ['trust "any"', { header: 'xfcc', trust: 'any' }, /"proxy.trust" is "any"/],
    ['an empty SPIFFE ID list', { header: 'xfcc', trust: { spiffeIds: [] } }, /"proxy.trust" is \{"spiffeIds":\[\]\}/],
    [
      'a bad SPIFFE ID',
      { header: 'xfcc', trust: { spiffeIds: ['spiffe://shop.test/ns/../x'] } },
      /"proxy.trust.spiffeIds\[0\]" is "spiffe:\/\/shop.test\/ns\/..\/x": path cannot contain dot segments/,
    ],
    [
      'a trust-domain ID',
      { header: 'xfcc', trust: { spiffeIds: ['spiffe://shop.test'] } },
      /"proxy.trust.spiffeIds\[0\]".*not a workload SPIFFE ID/,
    ],
    ['a misspelt trust key', { header: 'xfcc', trust: { spiffeId: [PROXY] } }, /"proxy.trust" is/],
    [
      'a misspelt option',
      { header: 'xfcc', trust: 'loopback', elements: 'last' },
      /"proxy.elements" is not an option; known options of "proxy"/,
    ],
    [
      'element "middle"',
      { header: 'xfcc', trust: 'loopback', element: 'middle' },
      /"proxy.element" is "middle"; use one of 'last', 'first'/,
    ],
    [
      'element with rfc9440',
      { header: 'rfc9440', trust: 'loopback', element: 'last' },
      /"proxy.element" applies to proxy.header 'xfcc' only/,
    ],
    [
      'a tiny header bound',
      { header: 'xfcc', trust: 'loopback', maxHeaderBytes: 10 },
      /"proxy.maxHeaderBytes" is 10; use a whole number ≥ 1024/,
    ],
    [
      'verifyChain "yes"',
      { header: 'xfcc', trust: 'loopback', verifyChain: 'yes' },
      /"proxy.verifyChain" is "yes"; use true or false/,
    ],
  ])('refuses %s, naming the option', (_name, proxy, message) => {
    const run = () => resolveMtlsOptions({ credentials, proxy } as MtlsModuleOptions);
    expect(run).toThrow(MtlsConfigError);
    expect(run).toThrow(message);
  });

  it('refuses mode permissive with loopback trust (there is no handshake to relax)', () => {
    expect(() => resolveMtlsOptions({ credentials, mode: 'permissive', proxy: { header: 'xfcc', trust: 'loopback' } })).toThrow(
      /"mode" is "permissive", but with proxy.trust 'loopback' the application serves plain HTTP/,
    );
  });
});
