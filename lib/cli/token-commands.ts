import { parseArgs } from 'node:util';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { printable } from '../format/describe-value.js';
import { initDevIssuer, mintDevToken } from './dev-issuer.js';
import { parseDuration } from '../format/duration.js';

/** Where the command writes (the same shape as main's `CliIo`). */
interface Io {
  log(message: string): void;
  error(message: string): void;
}

const DEFAULT_DIR = '.dev-certs';
const DEFAULT_TTL = '10m';

/** Usage text of the token subcommands, appended to the CLI's help. */
export const TOKEN_HELP = `Token issuer (development only):
  nestjs-mtls dev-ca issuer init [--issuer <https-url>] [--dir <dir>] [--force]
  nestjs-mtls dev-ca token --sub <sub> --aud <aud>... [--ttl 10m] [--bind-cert <cert.pem>]
                    [--scope "<scopes>"] [--dir <dir>]
  issuer init    Create a dev token issuer in <dir>/issuer/: an ES256 key (issuer.key, 0600)
                 and jwks.json for MtlsModule option tokens.issuers.<name>.jwks.
  token          Print a token signed by the dev issuer; --bind-cert binds it to a client
                 certificate (RFC 8705 cnf x5t#S256) for @RequireToken(…, { bind: 'certificate' }).`;

class Usage extends Error {}

/** Runs `dev-ca issuer …` or `dev-ca token …`; returns the exit status (0 ok, 1 failure, 2 usage). */
export async function runTokenCommand(command: 'issuer' | 'token', argv: readonly string[], io: Io): Promise<number> {
  try {
    return command === 'issuer' ? await issuer(argv, io) : await token(argv, io);
  } catch (error) {
    if (
      error instanceof Usage ||
      (error instanceof TypeError && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS'))
    ) {
      io.error(`nestjs-mtls: ${error.message}\nRun "nestjs-mtls --help" for usage.`);
      return 2;
    }
    if (error instanceof MtlsConfigError) {
      io.error(`nestjs-mtls: --${error.message.replace(/^bindCert:/, 'bind-cert:')} [${error.code}]`);
      return 1;
    }
    if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string') {
      io.error(`nestjs-mtls: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

async function issuer(argv: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'init')
    throw new Usage(`"dev-ca issuer" needs a subcommand: init${sub === undefined ? '' : ` (got "${printable(sub)}")`}`);
  const { values, positionals } = parseArgs({
    args: [...rest],
    options: {
      dir: { type: 'string', default: DEFAULT_DIR },
      issuer: { type: 'string' },
      force: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new Usage('"dev-ca issuer init" takes no arguments');
  const result = await initDevIssuer({ dir: values.dir, issuer: values.issuer, force: values.force });
  io.log(
    `dev token issuer ${result.action === 'created' ? 'created' : 'already present'}: iss ${result.issuer}, kid ${result.kid}, keys ${result.files.jwks}`,
  );
  if (result.action === 'created') io.log('This issuer is for development and tests only.');
  for (const warning of result.warnings) io.error(`warning: ${warning}`);
  return 0;
}

async function token(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      dir: { type: 'string', default: DEFAULT_DIR },
      sub: { type: 'string' },
      aud: { type: 'string', multiple: true, default: [] },
      ttl: { type: 'string', default: DEFAULT_TTL },
      'bind-cert': { type: 'string' },
      scope: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new Usage('"dev-ca token" takes no arguments');
  if (values.sub === undefined) throw new Usage('"dev-ca token" needs --sub, e.g. --sub alice');
  if (values.aud.length === 0) throw new Usage('"dev-ca token" needs --aud, e.g. --aud orders');
  const ttlMs = parseDuration(values.ttl);
  if (ttlMs === undefined) throw new Usage(`--ttl "${printable(values.ttl)}" is not a duration; use e.g. 90s, 10m or 1h`);
  // Warnings on stderr, the token alone on stdout, so that $(nestjs-mtls dev-ca token …) can be passed to curl.
  for (const warning of (await initDevIssuer({ dir: values.dir })).warnings) io.error(`warning: ${warning}`);
  io.log(
    await mintDevToken({
      dir: values.dir,
      sub: values.sub,
      aud: values.aud,
      ttlMs,
      bindCert: values['bind-cert'],
      scope: values.scope,
    }),
  );
  return 0;
}
