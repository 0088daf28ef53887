import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveCredentialFiles } from '../../lib/credentials/credentials-loader.js';
import type { CredentialsSourceOptions } from '../../lib/credentials/credentials.interfaces.js';
import { MtlsConfigError } from '../../lib/errors/mtls.errors.js';

describe('resolveCredentialFiles', () => {
  it('applies the Secret layout defaults and marks the directory as the commit point', () => {
    expect(resolveCredentialFiles({ dir: '/var/run/secrets/tls' })).toEqual({
      cert: '/var/run/secrets/tls/tls.crt',
      key: '/var/run/secrets/tls/tls.key',
      ca: '/var/run/secrets/tls/ca.crt',
      crl: [],
      secretDir: '/var/run/secrets/tls',
    });
  });

  it('resolves custom names and CRL files relative to the directory, and relative directories against the cwd', () => {
    expect(
      resolveCredentialFiles({
        dir: 'certs',
        certFileName: 'svid.pem',
        keyFileName: 'svid_key.pem',
        caFileName: 'bundle/svid_bundle.pem',
        crlFiles: ['crl.pem', '/etc/pki/extra.crl'],
      }),
    ).toEqual({
      cert: resolve('certs/svid.pem'),
      key: resolve('certs/svid_key.pem'),
      ca: resolve('certs/bundle/svid_bundle.pem'),
      crl: [resolve('certs/crl.pem'), '/etc/pki/extra.crl'],
      secretDir: resolve('certs'),
    });
  });

  it.each<[string, CredentialsSourceOptions, string[]]>([
    ['one CRL file', { certFile: 'a.crt', keyFile: '/k/a.key', caFile: 'ca.pem', crlFile: 'r.crl' }, [resolve('r.crl')]],
    [
      'several CRL files',
      { certFile: 'a.crt', keyFile: '/k/a.key', caFile: 'ca.pem', crlFile: ['r1.crl', '/r2.crl'] },
      [resolve('r1.crl'), '/r2.crl'],
    ],
    ['no CRL file', { certFile: 'a.crt', keyFile: '/k/a.key', caFile: 'ca.pem' }, []],
  ])('resolves separate files with %s', (_name, options, crl) => {
    expect(resolveCredentialFiles(options)).toEqual({
      cert: resolve('a.crt'),
      key: '/k/a.key',
      ca: resolve('ca.pem'),
      crl,
      secretDir: undefined,
    });
  });

  it('ignores fields explicitly set to undefined', () => {
    const options = { dir: '/tls', certFile: undefined } as unknown as CredentialsSourceOptions;
    expect(resolveCredentialFiles(options).secretDir).toBe('/tls');
  });

  const files = { certFile: '/a.crt', keyFile: '/a.key', caFile: '/ca.crt' };
  it.each<[string, unknown, RegExp]>([
    [
      'null',
      null,
      /"credentials" must be an object: pass \{ dir \} \(Kubernetes Secret layout\) or \{ certFile, keyFile, caFile \}/,
    ],
    ['a string', '/tls', /"credentials" must be an object/],
    ['an array', ['/tls'], /"credentials" must be an object/],
    ['an empty object', {}, /"credentials" is empty: pass \{ dir \}/],
    ['an empty dir', { dir: '' }, /"credentials\.dir" must be a non-empty file path, got ""/],
    ['a blank dir', { dir: '  ' }, /"credentials\.dir" must be a non-empty file path, got " {2}"/],
    ['a numeric dir', { dir: 42 }, /"credentials\.dir" must be a non-empty file path, got 42/],
    ['a NUL byte', { ...files, keyFile: '/a\0b' }, /"credentials\.keyFile" must be a non-empty file path/],
    [
      'both shapes',
      { dir: '/tls', certFile: '/a.crt' },
      /mixes the Secret layout \(dir\) with separate files \(certFile\); use either/,
    ],
    ['a missing caFile', { certFile: '/a.crt', keyFile: '/a.key' }, /"credentials\.caFile" is missing/],
    ['a missing keyFile', { certFile: '/a.crt', caFile: '/ca.crt' }, /"credentials\.keyFile" is missing/],
    [
      'file names without dir',
      { certFileName: 'x.crt' },
      /"credentials\.dir" is missing: certFileName only apply to a Secret directory/,
    ],
    [
      'a file name escaping the directory',
      { dir: '/tls', certFileName: '../x.crt' },
      /"credentials\.certFileName" must name a file inside "\/tls", got "\.\.\/x\.crt"/,
    ],
    [
      'an absolute file name outside the directory',
      { dir: '/tls', keyFileName: '/etc/key.pem' },
      /"credentials\.keyFileName" must name a file inside "\/tls"/,
    ],
    [
      'the directory itself as a file name',
      { dir: '/tls', caFileName: '.' },
      /"credentials\.caFileName" must name a file inside/,
    ],
    [
      'crlFiles as a string',
      { dir: '/tls', crlFiles: 'crl.pem' },
      /"credentials\.crlFiles" must be an array of paths, got "crl\.pem"/,
    ],
    [
      'a non-string CRL entry',
      { ...files, crlFile: ['/ok.crl', 7] },
      /"credentials\.crlFile\[1\]" must be a non-empty file path, got 7/,
    ],
    [
      'crlFile as an object',
      { ...files, crlFile: { path: '/x' } },
      /"credentials\.crlFile" must be a path or an array of paths, got an object/,
    ],
    ['a misspelt field', { ...files, certfile: '/a.crt' }, /unknown field\(s\) "certfile"; use dir, certFileName, .*certFile/],
  ])('refuses %s', (_name, options, message) => {
    const error = (() => {
      try {
        resolveCredentialFiles(options as CredentialsSourceOptions);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect((error as MtlsConfigError).code).toBe('ERR_MTLS_CONFIG_INVALID');
    expect((error as MtlsConfigError).message).toMatch(/^MtlsModule option "/);
    expect((error as MtlsConfigError).message).toMatch(message);
  });

  it('names the option path it was given', () => {
    expect(() => resolveCredentialFiles({ dir: '' }, 'client.credentials')).toThrow('MtlsModule option "client.credentials.dir"');
  });

  it('keeps nested file names inside the directory', () => {
    expect(resolveCredentialFiles({ dir: '/tls', certFileName: 'a/../b/tls.crt' }).cert).toBe(join('/tls', 'b/tls.crt'));
  });
});
