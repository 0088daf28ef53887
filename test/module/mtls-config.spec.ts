import { describe, expect, it } from 'vitest';
import { MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import { credentialUsages, resolveMtlsOptions } from '../../lib/mtls.config.js';
import type { MtlsModuleOptions } from '../../lib/mtls.options.js';

const credentials = { dir: '/var/run/secrets/tls' };

describe('resolveMtlsOptions', () => {
  it('applies secure defaults', () => {
    const resolved = resolveMtlsOptions({ credentials });
    expect(resolved).toMatchObject({
      defaultPolicy: 'deny',
      mode: 'strict',
      nonHttpContexts: 'deny',
      tls: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' },
      logRateLimitPerMinute: 60,
      client: { connectionsPerOrigin: 16, timeoutMs: 10_000, maxResponseBytes: 10 * 1024 * 1024, http2: false },
      reload: { enabled: true, debounceMs: 250, pollIntervalMs: 60_000, maxRetryDelayMs: 5_000 },
    });
    expect(resolved.credentialFiles.cert).toBe('/var/run/secrets/tls/tls.crt');
    expect(resolved.clientCredentialFiles).toBeUndefined();
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['no credentials', {}, /"credentials" is missing/],
    ['a misspelt option', { credentials, defaultpolicy: 'any-peer' }, /"defaultpolicy" is not an option/],
    ['an unknown tls option', { credentials, tls: { sigalgs: 'ecdsa_secp256r1_sha256' } }, /"tls.sigalgs" is not an option/],
    [
      'maxVersion below minVersion',
      { credentials, tls: { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' } },
      /"tls.maxVersion" is below "tls.minVersion"/,
    ],
    [
      'a TLS version Node would downgrade to',
      { credentials, tls: { minVersion: 'TLSv1' } },
      /"tls.minVersion" is "TLSv1"; use one of 'TLSv1.2', 'TLSv1.3'/,
    ],
    ['ciphers that are not a string', { credentials, tls: { ciphers: 123 } }, /"tls.ciphers" must be a non-empty string/],
    [
      'a connectionAuthorizer that is a SPIFFE ID',
      { credentials, connectionAuthorizer: 'spiffe://shop.test/ns/shop/sa/orders' },
      /"connectionAuthorizer" must be an authorizer made by the authorize… functions, e\.g\. authorizeMemberOf\('shop\.test'\); got string/,
    ],
    [
      'a connectionAuthorizer that is a bare function',
      { credentials, connectionAuthorizer: () => undefined },
      /"connectionAuthorizer" must be an authorizer made by the authorize… functions.*got function/,
    ],
    ['an unknown mode', { credentials, mode: 'lenient' }, /"mode" is "lenient"/],
    ['an unknown default policy', { credentials, defaultPolicy: 'allow' }, /"defaultPolicy" is "allow"/],
    ['a string for a boolean', { credentials, reload: { enabled: 'false' } }, /"reload.enabled" is "false"; use true or false/],
    ['a negative interval', { credentials, reload: { pollIntervalMs: -1 } }, /"reload.pollIntervalMs" is -1/],
    ['a fractional rate limit', { credentials, logRateLimitPerMinute: 1.5 }, /"logRateLimitPerMinute" is 1.5/],
    [
      'a plain-http upstream',
      { credentials, client: { upstreams: { inventory: { url: 'http://inventory', expectPeer: 'x' } } } },
      /"client.upstreams.inventory.url" must be an https:\/\/ URL without query, fragment or credentials; got "http:\/\/inventory"/,
    ],
    [
      'an upstream URL with a query',
      { credentials, client: { upstreams: { inventory: { url: 'https://inventory/?a=1', expectPeer: 'x' } } } },
      /"client.upstreams.inventory.url" must be an https:\/\/ URL without query/,
    ],
    [
      'an upstream URL that is no URL',
      { credentials, client: { upstreams: { inventory: { url: 'https://', expectPeer: 'x' } } } },
      /"client.upstreams.inventory.url" is not a URL: "https:\/\/"/,
    ],
    [
      'an upstream without expectPeer',
      { credentials, client: { upstreams: { inventory: { url: 'https://inventory' } } } },
      /"client.upstreams.inventory.expectPeer" is missing/,
    ],
    ['a tls option that is not an object', { credentials, tls: 'TLSv1.3' }, /"tls" must be an object/],
  ])('refuses %s, naming the option', (_name, options, message) => {
    let error: unknown;
    try {
      resolveMtlsOptions(options as unknown as MtlsModuleOptions);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect((error as MtlsConfigError).code).toBe('ERR_MTLS_CONFIG_INVALID');
    expect((error as MtlsConfigError).message).toMatch(message);
  });

  it('decides which usages each credential set must carry', () => {
    const shared = resolveMtlsOptions({ credentials });
    const separate = resolveMtlsOptions({ credentials, client: { credentials: { dir: '/var/run/secrets/client' } } });
    expect(credentialUsages('identity', shared)).toEqual(['serverAuth', 'clientAuth']);
    expect(credentialUsages('identity', separate)).toEqual(['serverAuth']);
    expect(credentialUsages('client', separate)).toEqual(['clientAuth']);
  });
});
