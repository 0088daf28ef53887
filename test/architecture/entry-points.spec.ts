import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as root from 'nestjs-mtls';
import * as credentials from 'nestjs-mtls/credentials';
import * as spiffe from 'nestjs-mtls/spiffe';
import * as testing from 'nestjs-mtls/testing';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Every export is a promise to keep: a change to these lists is a change to the public API, made on purpose.
const ENTRIES: ReadonlyArray<readonly [entry: string, module: object, values: readonly string[]]> = [
  [
    'nestjs-mtls',
    root,
    [
      'AllowAnyPeer',
      'AllowCommonNames',
      'AllowDnsNames',
      'AllowPeers',
      'AllowTrustDomain',
      'CertificateParseError',
      'CredentialsError',
      'CredentialsStatus',
      'MTLS_CLIENT_CREDENTIALS',
      'MTLS_IDENTITY_CREDENTIALS',
      'MTLS_OPTIONS',
      'MTLS_TOKEN_REQUIREMENT',
      'MtlsConfigError',
      'MtlsDispatcher',
      'MtlsError',
      'MtlsEvents',
      'MtlsExceptionFilter',
      'MtlsGuard',
      'MtlsHttpClient',
      'MtlsHttpException',
      'MtlsHttpsAgent',
      'MtlsModule',
      'MtlsTokenGuard',
      'MtlsUpstreamClient',
      'Peer',
      'PeerError',
      'ProxyHeaderError',
      'RequireToken',
      'SpiffeIdError',
      'Token',
      'TokenError',
      'TokenIssuers',
      'UpstreamError',
      'WorkloadApiError',
      'forwardedCertificateDer',
      'mtlsHttpsOptions',
      'peerOfRequest',
      'toHttpException',
      'verifiedTokenOf',
    ],
  ],
  [
    'nestjs-mtls/spiffe',
    spiffe,
    [
      'SPIFFE_ID_MAX_BYTES',
      'SpiffeId',
      'SpiffeIdError',
      'TRUST_DOMAIN_MAX_BYTES',
      'authorizeAny',
      'authorizeAnyOf',
      'authorizeCommonName',
      'authorizeDnsName',
      'authorizeId',
      'authorizeMatch',
      'authorizeMemberOf',
      'authorizeNone',
      'authorizeOneOf',
      'compileSpiffePattern',
      'isValidSpiffeId',
      'joinSpiffePathSegments',
      'parseSpiffeId',
      'parseTrustDomain',
      'peerIdentityFromCertificate',
      'peerIdentityFromDer',
      'spiffeIdError',
      'spiffeIdFromPath',
      'spiffeIdFromSegments',
      'validateSpiffePath',
      'validateSpiffePathSegment',
    ],
  ],
  [
    'nestjs-mtls/credentials',
    credentials,
    [
      'CertificateParseError',
      'CredentialStore',
      'CredentialsError',
      'CredentialsReloader',
      'EKU_CLIENT_AUTH',
      'EKU_SERVER_AUTH',
      'PrivateKeyMaterial',
      'describeCredentials',
      'loadCredentials',
      'parseCertificateDer',
      'parseCertificatesPem',
      'readCredentials',
      'resolveCredentialFiles',
      'resolveMtlsOptions',
      'validateCredentials',
    ],
  ],
  [
    'nestjs-mtls/testing',
    testing,
    [
      'CertificateAuthority',
      'TestPki',
      'TestTokenIssuer',
      'WorkloadApiTestServer',
      'callAs',
      'certificateThumbprint',
      'secretFiles',
      'rfc9440Fields',
      'writeCredentialFiles',
      'writeKubernetesSecret',
      'xfccElement',
    ],
  ],
];

describe('the package entry points', () => {
  it.each(ENTRIES)('%s exports exactly its documented values', (_entry, module, values) => {
    expect(Object.keys(module).sort()).toEqual([...values].sort());
  });

  it('package.json maps each entry to its built file', () => {
    const { exports } = JSON.parse(readFileSync(resolve(repo, 'package.json'), 'utf8')) as {
      exports: Record<string, { import?: string } | string>;
    };
    expect(Object.keys(exports).sort()).toEqual(
      [
        '.',
        './credentials',
        './fastify',
        './package.json',
        './prometheus',
        './spiffe',
        './terminus',
        './testing',
        './workload-api',
      ].sort(),
    );
    expect(exports['./spiffe']).toEqual({ types: './dist/lib/spiffe/index.d.ts', import: './dist/lib/spiffe/index.js' });
    expect(exports['./credentials']).toEqual({
      types: './dist/lib/credentials/index.d.ts',
      import: './dist/lib/credentials/index.js',
    });
  });

  it('switching on an AnyMtlsError code narrows to its class', () => {
    const describe = (error: root.AnyMtlsError): string => {
      switch (error.code) {
        case 'ERR_MTLS_UPSTREAM_TIMEOUT':
          return `upstream ${error.upstream}`;
        case 'ERR_MTLS_CERT_EXPIRED':
          return `file ${error.file}`;
        default:
          return error.code;
      }
    };
    expect(describe(new root.UpstreamError('ERR_MTLS_UPSTREAM_TIMEOUT', 'slow', { upstream: 'inventory' }))).toBe(
      'upstream inventory',
    );
    expect(
      describe(
        new root.CredentialsError('ERR_MTLS_CERT_EXPIRED', 'old', { file: 'tls.crt', field: 'certificate', fix: 'renew' }),
      ),
    ).toBe('file tls.crt');
  });

  // @peculiar/x509 sets a global crypto provider and loads reflect-metadata's polyfill: only the CLI and the testing
  // kit may load it. A child Node process in which it cannot be resolved loads the other entries and starts nothing.
  it('the main, spiffe and credentials entries load without @peculiar/x509; the testing kit needs it', async () => {
    const hooks = pathToFileURL(resolve(repo, 'test/observability/fixtures/without-optional-peers.hooks.mjs')).href;
    const url = (path: string): string => JSON.stringify(pathToFileURL(resolve(repo, path)).href);
    const script = `
      import 'reflect-metadata';
      const results = {};
      for (const [name, entry] of Object.entries({
        root: ${url('lib/index.ts')},
        spiffe: ${url('lib/spiffe/index.ts')},
        credentials: ${url('lib/credentials/index.ts')},
        testing: ${url('lib/testing/index.ts')},
      })) {
        try {
          results[name] = Object.keys(await import(entry)).length;
        } catch (error) {
          results[name] = error.message;
        }
      }
      console.log(JSON.stringify(results));
    `;
    const register = `data:text/javascript,import{register}from'node:module';register(${JSON.stringify(hooks)});`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', register, '--input-type=module', '--eval', script],
      { cwd: repo, env: { ...process.env, UNINSTALLED_PACKAGES: '^@peculiar\\/x509(?:\\/|$)' }, timeout: 60_000 },
    );
    const results = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, number | string>;
    expect(results).toEqual({
      root: ENTRIES[0]![2].length,
      spiffe: ENTRIES[1]![2].length,
      credentials: ENTRIES[2]![2].length,
      testing: expect.stringMatching(/^Cannot find package '@peculiar\/x509' imported from file:/),
    });
  }, 60_000);
});
