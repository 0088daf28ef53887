import { describe, expect, it } from 'vitest';
import {
  decodePemBlock,
  encodePem,
  findPemBlocks,
  isEncryptedKeyBlock,
  isPrivateKeyLabel,
  redactPrivateKeys,
} from '../../lib/x509/pem.js';

const block = (label: string, body = 'AAEC', headers = ''): string =>
  `-----BEGIN ${label}-----\n${headers}${body}\n-----END ${label}-----\n`;

describe('findPemBlocks', () => {
  it.each<[string, string, string[]]>([
    ['nothing', 'no pem here', []],
    ['one block', block('CERTIFICATE'), ['CERTIFICATE']],
    ['blocks among comments', `subject=CN=x\n${block('CERTIFICATE')}# note\n${block('X509 CRL')}`, ['CERTIFICATE', 'X509 CRL']],
    ['CRLF line ends', block('PRIVATE KEY').replace(/\n/g, '\r\n'), ['PRIVATE KEY']],
    ['EC parameters before a key', block('EC PARAMETERS') + block('EC PRIVATE KEY'), ['EC PARAMETERS', 'EC PRIVATE KEY']],
  ])('finds %s', (_name, text, labels) => {
    const scan = findPemBlocks(Buffer.from(text));
    expect(scan.ok && scan.blocks.map((b) => b.label)).toEqual(labels);
  });

  it.each<[string, string, string]>([
    [
      'a truncated block',
      block('CERTIFICATE').slice(0, 40),
      'PEM block #1 ("CERTIFICATE") has no matching END line (truncated file?)',
    ],
    [
      'a BEGIN inside a block',
      `-----BEGIN CERTIFICATE-----\nAA\n${block('CERTIFICATE')}`,
      'PEM block #1 ("CERTIFICATE") has no matching END line (truncated file?)',
    ],
    [
      'a mismatched END label',
      '-----BEGIN CERTIFICATE-----\nAA\n-----END X509 CRL-----\n',
      'PEM block #1 ("CERTIFICATE") has no matching END line (truncated file?)',
    ],
    ['a BEGIN line broken across lines', '-----BEGIN CERTIFICATE\n-----\n', 'PEM block #1 has a malformed BEGIN line'],
    ['a label with odd characters', '-----BEGIN MZ\u0000secret-----\n', 'PEM block #1 has a malformed BEGIN line'],
    [
      'a second block truncated',
      block('CERTIFICATE') + '-----BEGIN CERTIFICATE-----\nAAAA',
      'PEM block #2 ("CERTIFICATE") has no matching END line (truncated file?)',
    ],
  ])('refuses %s without quoting the content', (_name, text, reason) => {
    expect(findPemBlocks(Buffer.from(text))).toEqual({ ok: false, reason });
  });
});

describe('decodePemBlock', () => {
  const decode = (text: string): Buffer | undefined => {
    const data = Buffer.from(text);
    const scan = findPemBlocks(data);
    if (!scan.ok) throw new Error(scan.reason);
    return decodePemBlock(data, scan.blocks[0]!);
  };

  it.each<[string, string, string | undefined]>([
    ['plain base64', block('CERTIFICATE', 'AAEC'), '000102'],
    ['wrapped base64 with padding', block('CERTIFICATE', 'AAECAw\n==', ''), '00010203'],
    ['characters outside base64', block('CERTIFICATE', 'AA*C'), undefined],
    ['a length that is not a multiple of 4', block('CERTIFICATE', 'AAECA'), undefined],
    ['RFC 1421 headers', block('CERTIFICATE', 'AAEC', 'Proc-Type: 4,ENCRYPTED\n\n'), undefined],
    ['an empty body', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', undefined],
  ])('decodes %s strictly', (_name, text, hex) => {
    expect(decode(text)?.toString('hex')).toBe(hex);
  });
});

describe('isEncryptedKeyBlock', () => {
  it.each<[string, string, boolean]>([
    ['PKCS#8 encrypted', block('ENCRYPTED PRIVATE KEY'), true],
    ['legacy Proc-Type', block('RSA PRIVATE KEY', 'AAEC', 'Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\n'), true],
    ['a plain key', block('PRIVATE KEY'), false],
    ['base64 that spells ENCRYPTED', block('PRIVATE KEY', 'ENCRYPTEDAAA'), false],
  ])('%s → %s', (_name, text, encrypted) => {
    const data = Buffer.from(text);
    const scan = findPemBlocks(data);
    expect(scan.ok && isEncryptedKeyBlock(data, scan.blocks[0]!)).toBe(encrypted);
  });
});

describe('encodePem', () => {
  it('writes 64-character lines that decode back to the DER', () => {
    const der = Buffer.alloc(100, 7);
    const pem = encodePem('CERTIFICATE', der);
    expect(pem.split('\n').map((line) => line.length)).toEqual([27, 64, 64, 8, 25, 0]);
    const scan = findPemBlocks(Buffer.from(pem));
    expect(scan.ok && decodePemBlock(Buffer.from(pem), scan.blocks[0]!)).toEqual(der);
  });
});

describe('redactPrivateKeys', () => {
  const secret = 'S2V5Qnl0ZXNIZXJl';
  const key = block('PRIVATE KEY', secret);
  const redacted = '-----BEGIN REDACTED PRIVATE KEY BLOCK-----\n-----END REDACTED PRIVATE KEY BLOCK-----';
  it.each<[string, string, string]>([
    ['a key before certificates', key + block('CERTIFICATE'), `${redacted}\n${block('CERTIFICATE')}`],
    ['no key at all', block('CERTIFICATE') + block('X509 CRL'), block('CERTIFICATE') + block('X509 CRL')],
    [
      'an SEC1 key after EC parameters',
      block('EC PARAMETERS') + block('EC PRIVATE KEY', secret),
      `${block('EC PARAMETERS')}${redacted}\n`,
    ],
    ['a one-line key', `-----BEGIN PRIVATE KEY-----${secret}-----END PRIVATE KEY-----\n`, `${redacted}\n`],
    ['a key after text on the same line', `junk ${key}`, `junk ${redacted}\n`],
    ['a truncated key', `-----BEGIN PRIVATE KEY-----\n${secret}\n`, '-----BEGIN REDACTED PRIVATE KEY BLOCK-----\n'],
    [
      'a truncated key followed by a certificate',
      `-----BEGIN PRIVATE KEY-----\n${secret}\n${block('CERTIFICATE')}`,
      `-----BEGIN REDACTED PRIVATE KEY BLOCK-----\n${block('CERTIFICATE')}`,
    ],
    [
      'a key with a mismatched END line',
      `-----BEGIN PRIVATE KEY-----\n${secret}\n-----END RSA PRIVATE KEY-----\n`,
      '-----BEGIN REDACTED PRIVATE KEY BLOCK-----\n',
    ],
    [
      'a broken BEGIN line running into the key',
      `-----BEGIN PRIVATE KEY${secret}\n-----END PRIVATE KEY-----\n`,
      '-----BEGIN REDACTED PRIVATE KEY BLOCK\n',
    ],
  ])('redacts %s', (_name, text, expected) => {
    const result = redactPrivateKeys(Buffer.from(text));
    expect(result).toBe(expected);
    expect(result).not.toContain(secret);
    expect(result).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  });

  it.each<[string, string]>([
    ['a combined file', block('CERTIFICATE') + key + block('CERTIFICATE')],
    ['a truncated key', `${block('CERTIFICATE')}-----BEGIN PRIVATE KEY-----\n${secret}\n`],
    ['a key interrupted by a certificate', `-----BEGIN PRIVATE KEY-----\n${secret}\n${block('CERTIFICATE')}`],
    ['a broken BEGIN line', `-----BEGIN PRIVATE KEY\n${secret}\n-----END PRIVATE KEY-----\n`],
  ])('keeps the structure findPemBlocks reports for %s', (_name, text) => {
    const shape = (scan: ReturnType<typeof findPemBlocks>) =>
      scan.ok ? scan.blocks.map((b) => (isPrivateKeyLabel(b.label) ? 'KEY' : b.label)) : scan.reason.replace(/"[A-Z ]+"/, '"…"');
    expect(shape(findPemBlocks(Buffer.from(redactPrivateKeys(Buffer.from(text)))))).toEqual(
      shape(findPemBlocks(Buffer.from(text))),
    );
  });
});

// Found by fuzzing: the newline after each BEGIN was looked for up to the end of the data, so many blocks on one line
// cost time growing with the square of the size (1 MB took 200-330 ms, 10 MB would take tens of seconds).
describe('PEM scanning in linear time', () => {
  const oneLine = (unit: string): Buffer => Buffer.from(unit.repeat(Math.ceil(2_000_000 / unit.length)));
  it.each<[string, Buffer, (data: Buffer) => unknown]>([
    ['findPemBlocks, 2 MB of blocks on one line', oneLine('-----BEGIN A-----x-----END A-----'), findPemBlocks],
    ['redactPrivateKeys, 2 MB of blocks on one line', oneLine('-----BEGIN A-----x-----END A-----'), redactPrivateKeys],
    [
      'redactPrivateKeys, 2 MB of key blocks on one line',
      oneLine('-----BEGIN PRIVATE KEY-----x-----END PRIVATE KEY-----'),
      redactPrivateKeys,
    ],
    ['redactPrivateKeys, 2 MB of BEGIN markers', oneLine('-----BEGIN '), redactPrivateKeys],
  ])('%s', (_name, data, scan) => {
    scan(Buffer.from('-----BEGIN A-----\nAAEC\n-----END A-----\n')); // warm up: the bound is for the scan, not the JIT
    const start = performance.now();
    scan(data);
    expect(performance.now() - start).toBeLessThan(150);
  });
});
