#!/usr/bin/env node
// The `nestjs-mtls` command: a development CA and a certificate inspector. Not for production certificates.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { MtlsConfigError, MtlsError } from '../errors/mtls.errors.js';
import type { KeyAlgorithm } from '../x509/certificate-authority.js';
import { inspectCertificate } from './certificate-inspection.js';
import { describeDevCaResult, describeDevCertificateResult, displayPath, formatInspection } from './cli-format.js';
import { printable } from '../format/describe-value.js';
import { describeDevCertificatesIgnore, ignoreDevCertificates } from './dev-certs-gitignore.js';
import {
  DEV_KEY_ALGORITHMS,
  initDevCa,
  issueDevCertificate,
  normalizeDevCaOptions,
  normalizeDevCertificateRequest,
} from './dev-ca.js';
import { parseDuration } from '../format/duration.js';
import { runTokenCommand, TOKEN_HELP } from './token-commands.js';

/** Where the command writes: `console` when run as a program, a capture in tests. */
export interface CliIo {
  /** Results, one line or block per call (stdout). */
  log(message: string): void;
  /** Errors and warnings (stderr). */
  error(message: string): void;
}

/** Exit status: success. */
export const EXIT_OK = 0;
/** Exit status: the command failed (or `inspect --key` found a key that does not match). */
export const EXIT_FAILURE = 1;
/** Exit status: the command line is wrong. */
export const EXIT_USAGE = 2;

const DEFAULT_DIR = '.dev-certs';

const HELP = `nestjs-mtls: development tools for nestjs-mtls

For development and tests only. Production certificates come from cert-manager,
Vault PKI or SPIRE: point MtlsModule.forRoot({ credentials }) at the files they
write (see the README).

Usage:
  nestjs-mtls dev-ca init [--trust-domain <td>] [--dir <dir>] [--validity <duration>] [--force]
  nestjs-mtls dev-ca issue <name> --spiffe-id <id> [--dns <name>]... [--ip <address>]...
                    [--validity <duration>] [--key-algorithm <alg>] [--dir <dir>] [--force]
  nestjs-mtls inspect <cert.pem> [--key <key.pem>] [--json]
  nestjs-mtls --help

Commands:
  dev-ca init    Create a development CA in <dir>/ca/ (ca.crt, and ca.key with mode 0600),
                 or check the one already there. An existing CA key is replaced only with
                 --force, and every certificate it issued must then be re-issued.
  dev-ca issue   Issue a SPIFFE certificate (ECDSA P-256, serverAuth and clientAuth, one URI
                 SAN) into <dir>/<name>/ in the Kubernetes Secret layout: tls.crt (leaf and
                 chain), tls.key (mode 0600), ca.crt. Keeps a certificate that is still good;
                 re-issues one that has expired, has less than a third of its lifetime left,
                 or no longer matches the request. Creates the CA first if there is none.
  inspect        Show a certificate's subject, SPIFFE ID, SANs, issuer, validity, SHA-256
                 fingerprint and serial; with --key, whether the key matches. Never prints a key.

Options:
  --dir <dir>              dev CA directory (default: ${DEFAULT_DIR})
  --trust-domain <td>      trust domain of a new CA, e.g. shop.test
  --spiffe-id <id>         the certificate's identity, e.g. spiffe://shop.test/ns/shop/sa/orders
  --dns <name>             add a DNS SAN (repeatable), e.g. --dns localhost
  --ip <address>           add an IP SAN (repeatable), e.g. --ip 127.0.0.1
  --validity <duration>    lifetime from now: 90s, 30m, 24h, 7d, 1h30m
                           (default: 24h for a certificate, 365d for a CA)
  --key-algorithm <alg>    ecdsa-p256 (default), ecdsa-p384, rsa-2048 or ed25519
  --force                  init: replace the CA key; issue: re-issue even if still good
  --key <key.pem>          inspect: check that this private key belongs to the certificate
  --json                   inspect: print JSON instead of text
  -h, --help               show this help

Exit status: 0 success; 1 failure, or a key that does not match (inspect --key); 2 usage error.

Example:
  nestjs-mtls dev-ca init --trust-domain shop.test
  nestjs-mtls dev-ca issue orders --spiffe-id spiffe://shop.test/ns/shop/sa/orders \\
      --dns localhost --ip 127.0.0.1
  nestjs-mtls inspect .dev-certs/orders/tls.crt --key .dev-certs/orders/tls.key
  # then: MtlsModule.forRoot({ credentials: { dir: '.dev-certs/orders' } })

${TOKEN_HELP}`;

// The dev CA names its options as the API spells them; the command line user typed flags.
const FLAGS: Readonly<Record<string, string>> = {
  name: '<name>',
  spiffeId: '--spiffe-id',
  trustDomain: '--trust-domain',
  dnsNames: '--dns',
  ipAddresses: '--ip',
  validityMs: '--validity',
  keyAlgorithm: '--key-algorithm',
  dir: '--dir',
};
const OPTION_PREFIX = /^(\w+):/;

/** A wrong command line: reported with a pointer to --help, exit status 2. */
class UsageError extends Error {}

/**
 * Runs the command line `argv` (without `node` and the script) and returns the exit status. Writes only through `io`
 * and never calls `process.exit`, so it can be tested in-process.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case 'dev-ca':
        return await devCa(rest, io);
      case 'inspect':
        return await inspect(rest, io);
      case '-h':
      case '--help':
      case 'help':
        io.log(HELP);
        return EXIT_OK;
      case undefined:
        io.error(HELP);
        return EXIT_USAGE;
      default:
        throw new UsageError(`unknown command "${printable(command)}"`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.error(`nestjs-mtls: ${error.message}\nRun "nestjs-mtls --help" for usage.`);
      return EXIT_USAGE;
    }
    io.error(describeError(error));
    return EXIT_FAILURE;
  }
}

async function devCa(argv: readonly string[], io: CliIo): Promise<number> {
  const [subcommand, ...rest] = argv;
  switch (subcommand) {
    case 'init':
      return devCaInit(rest, io);
    case 'issue':
      return devCaIssue(rest, io);
    case 'issuer':
    case 'token':
      return runTokenCommand(subcommand, rest, io);
    case '-h':
    case '--help':
      io.log(HELP);
      return EXIT_OK;
    case undefined:
      throw new UsageError('"dev-ca" needs a subcommand: init or issue');
    default:
      throw new UsageError(`unknown dev-ca subcommand "${printable(subcommand)}"; use init or issue`);
  }
}

async function devCaInit(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, {
    dir: { type: 'string', default: DEFAULT_DIR },
    'trust-domain': { type: 'string' },
    validity: { type: 'string' },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    io.log(HELP);
    return EXIT_OK;
  }
  noPositionals('dev-ca init', positionals);
  const validityMs = values.validity === undefined ? undefined : duration(values.validity);
  const options = { dir: values.dir, trustDomain: values['trust-domain'], force: values.force, validityMs };
  asUsageError(() => normalizeDevCaOptions(options));
  const result = await initDevCa(options);
  io.log(describeDevCaResult(result));
  warn(io, result.warnings);
  io.log(await devCertificatesIgnoreLine(values.dir));
  if (result.action !== 'loaded') {
    io.log('This CA is for development and tests only; production certificates come from cert-manager, Vault PKI or SPIRE.');
  }
  return EXIT_OK;
}

async function devCaIssue(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, {
    dir: { type: 'string', default: DEFAULT_DIR },
    'spiffe-id': { type: 'string' },
    dns: { type: 'string', multiple: true, default: [] },
    ip: { type: 'string', multiple: true, default: [] },
    validity: { type: 'string' },
    'key-algorithm': { type: 'string' },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    io.log(HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? '"dev-ca issue" needs the name of the certificate set, e.g. dev-ca issue orders --spiffe-id spiffe://shop.test/ns/shop/sa/orders'
        : `"dev-ca issue" takes one name, got ${positionals.map((p) => `"${printable(p)}"`).join(' ')}`,
    );
  }
  const name = positionals[0]!;
  const spiffeId = values['spiffe-id'];
  if (spiffeId === undefined) {
    throw new UsageError(`"dev-ca issue" needs --spiffe-id, e.g. --spiffe-id spiffe://shop.test/ns/shop/sa/${printable(name)}`);
  }
  const options = {
    dir: values.dir,
    name,
    spiffeId,
    dnsNames: values.dns,
    ipAddresses: values.ip,
    validityMs: values.validity === undefined ? undefined : duration(values.validity),
    keyAlgorithm: values['key-algorithm'] === undefined ? undefined : keyAlgorithm(values['key-algorithm']),
    force: values.force,
  };
  asUsageError(() => normalizeDevCertificateRequest(options));
  const result = await issueDevCertificate(options);
  if (result.createdCa !== undefined) {
    io.log(describeDevCaResult(result.createdCa));
    io.log(await devCertificatesIgnoreLine(values.dir));
  }
  io.log(describeDevCertificateResult(result));
  warn(io, result.warnings);
  return EXIT_OK;
}

/** Says that the folder holds a CA key, adding it to the .gitignore beside it when there is one. */
async function devCertificatesIgnoreLine(dir: string): Promise<string> {
  const result = await ignoreDevCertificates(dir);
  return describeDevCertificatesIgnore(result, `${displayPath(resolve(dir))}/`, displayPath(result.gitignore));
}

async function inspect(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, {
    key: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    io.log(HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      '"inspect" takes one certificate file, e.g. inspect .dev-certs/orders/tls.crt --key .dev-certs/orders/tls.key',
    );
  }
  const inspection = await inspectCertificate({ certFile: positionals[0]!, keyFile: values.key });
  io.log(values.json ? JSON.stringify(inspection, null, 2) : formatInspection(inspection));
  return inspection.keyMatches === false ? EXIT_FAILURE : EXIT_OK;
}

type Options = NonNullable<ParseArgsConfig['options']>;

function parse<T extends Options>(argv: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // node:util reports unknown options and missing values as ERR_PARSE_ARGS_* TypeErrors.
    if (error instanceof TypeError && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}

function noPositionals(command: string, positionals: readonly string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(`"${command}" takes no arguments, got ${positionals.map((p) => `"${printable(p)}"`).join(' ')}`);
  }
}

function duration(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new UsageError(`--validity "${printable(text)}" is not a duration; use e.g. 90s, 30m, 24h, 7d or 1h30m`);
  }
  return ms;
}

function keyAlgorithm(text: string): KeyAlgorithm {
  const algorithm = DEV_KEY_ALGORITHMS.find((candidate) => candidate.toLowerCase() === text.toLowerCase());
  if (algorithm === undefined) {
    throw new UsageError(
      `--key-algorithm "${printable(text)}" is not one of ${DEV_KEY_ALGORITHMS.map((a) => a.toLowerCase()).join(', ')}`,
    );
  }
  return algorithm;
}

/** Runs a pure input check of the dev CA: what it rejects is a wrong value on the command line. */
function asUsageError(check: () => unknown): void {
  try {
    check();
  } catch (error) {
    if (error instanceof MtlsConfigError) {
      throw new UsageError(error.message.replace(OPTION_PREFIX, (_match, option: string) => `${FLAGS[option] ?? option}:`));
    }
    throw error;
  }
}

function warn(io: CliIo, warnings: readonly string[]): void {
  for (const warning of warnings) {
    io.error(`warning: ${warning}`);
  }
}

function describeError(error: unknown): string {
  if (error instanceof MtlsError) {
    return `nestjs-mtls: ${error.message} [${error.code}]`;
  }
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string') {
    // System errors (EACCES, ENOSPC, …) name the path and the reason already.
    return `nestjs-mtls: ${error.message}`;
  }
  // Anything else is a bug: the stack is what a bug report needs.
  return `nestjs-mtls: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
}

/** True when this module is the program node started (directly or through the npm bin link), not an import. */
function isMainModule(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMainModule()) {
  process.exitCode = await run(process.argv.slice(2), console);
}
