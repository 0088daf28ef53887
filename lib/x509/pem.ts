/**
 * PEM framing (RFC 7468) over raw bytes. Works on Buffers so that a private key file is located and handed to
 * OpenSSL without ever being turned into a string: only labels and byte offsets leave this module.
 */

/** One `-----BEGIN <label>----- … -----END <label>-----` block, as byte offsets into the scanned buffer. */
export interface PemBlock {
  /** The label, e.g. `CERTIFICATE`, `PRIVATE KEY`, `X509 CRL`. */
  readonly label: string;
  /** Offset of the BEGIN line. */
  readonly start: number;
  /** Offset just past the END line's closing dashes. */
  readonly end: number;
  /** Offsets of the text between the BEGIN and END lines (headers and base64). */
  readonly bodyStart: number;
  readonly bodyEnd: number;
}

/** Result of {@link findPemBlocks}: the blocks, or why the framing is broken (the reason never quotes file content). */
export type PemScan =
  { readonly ok: true; readonly blocks: readonly PemBlock[] } | { readonly ok: false; readonly reason: string };

const BEGIN = '-----BEGIN ';
const DASHES = '-----';
const NEWLINE = 0x0a;
// RFC 7468 §3 labels; anything else is refused so a garbled line is never echoed into an error message.
const LABEL = /^[A-Z0-9][A-Z0-9 ]{0,62}$/;

/**
 * True when `data[from, to)` holds a newline. The search stops at `to` (the label's closing dashes), never at the end
 * of the data: many blocks on one long line would otherwise cost time growing with the square of its length.
 */
function hasNewline(data: Buffer, from: number, to: number): boolean {
  return data.subarray(from, to).includes(NEWLINE);
}

/** Offset of the newline at or after `from`, or the end of the data. */
function lineEndAfter(data: Buffer, from: number): number {
  const newline = data.indexOf(NEWLINE, from);
  return newline < 0 ? data.length : newline;
}

/** Finds every PEM block; text outside blocks (comments, `openssl x509 -text` output) is ignored, as OpenSSL does. */
export function findPemBlocks(data: Buffer): PemScan {
  const blocks: PemBlock[] = [];
  let position = 0;
  for (;;) {
    const start = data.indexOf(BEGIN, position, 'latin1');
    if (start < 0) return { ok: true, blocks };
    const labelStart = start + BEGIN.length;
    const labelEnd = data.indexOf(DASHES, labelStart, 'latin1');
    if (labelEnd < 0 || hasNewline(data, labelStart, labelEnd)) {
      return { ok: false, reason: `PEM block #${blocks.length + 1} has a malformed BEGIN line` };
    }
    const label = data.toString('latin1', labelStart, labelEnd);
    if (!LABEL.test(label)) {
      return { ok: false, reason: `PEM block #${blocks.length + 1} has a malformed BEGIN line` };
    }
    const bodyStart = labelEnd + DASHES.length;
    const endMarker = `-----END ${label}-----`;
    const bodyEnd = data.indexOf(endMarker, bodyStart, 'latin1');
    if (bodyEnd < 0) {
      return { ok: false, reason: `PEM block #${blocks.length + 1} ("${label}") has no matching END line (truncated file?)` };
    }
    const nextBegin = data.indexOf(BEGIN, bodyStart, 'latin1');
    if (nextBegin >= 0 && nextBegin < bodyEnd) {
      return { ok: false, reason: `PEM block #${blocks.length + 1} ("${label}") has no matching END line (truncated file?)` };
    }
    const end = bodyEnd + endMarker.length;
    blocks.push({ label, start, end, bodyStart, bodyEnd });
    position = end;
  }
}

/**
 * Decodes a block's body to DER. Returns undefined when the body carries RFC 1421 headers or is not strict base64,
 * rather than letting Node's lenient decoder skip the garbage.
 */
export function decodePemBlock(data: Buffer, block: PemBlock): Buffer | undefined {
  const body = data.toString('latin1', block.bodyStart, block.bodyEnd).replace(/[\r\n\t ]+/g, '');
  if (body.length === 0 || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return undefined;
  return Buffer.from(body, 'base64');
}

/** True for an encrypted private key: PKCS#8 `ENCRYPTED PRIVATE KEY` or a legacy block with `Proc-Type: 4,ENCRYPTED`. */
export function isEncryptedKeyBlock(data: Buffer, block: PemBlock): boolean {
  if (block.label === 'ENCRYPTED PRIVATE KEY') return true;
  // ':' and '-' are not base64 characters, so this header cannot be matched inside the key's own bytes.
  const header = data.indexOf('Proc-Type:', block.bodyStart, 'latin1');
  if (header < 0 || header >= block.bodyEnd) return false;
  const lineEnd = data.indexOf(NEWLINE, header);
  const headerLine = data.toString('latin1', header, lineEnd < 0 || lineEnd > block.bodyEnd ? block.bodyEnd : lineEnd);
  return headerLine.includes('ENCRYPTED');
}

/** Encodes DER as PEM with 64-character lines and a trailing newline. */
export function encodePem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Label that stands in for a private key block in certificate and bundle text (see {@link redactPrivateKeys}). */
export const REDACTED_KEY_LABEL = 'REDACTED PRIVATE KEY BLOCK';

/** True for a private key block, or the stand-in {@link redactPrivateKeys} leaves for one. */
export function isPrivateKeyLabel(label: string): boolean {
  return label.endsWith('PRIVATE KEY') || label === REDACTED_KEY_LABEL;
}

/**
 * The text of a certificate or bundle file with every private key block replaced by an empty
 * `REDACTED PRIVATE KEY BLOCK`, framed like the original (a truncated key stays truncated), so that
 * {@link findPemBlocks} reports the same structure. A combined key+certificate file (cert-manager
 * `tls-combined.pem`, the SPIFFE credential bundle draft) must not leave key bytes in a string.
 */
export function redactPrivateKeys(data: Buffer): string {
  const kept: Buffer[] = [];
  let copied = 0;
  for (
    let begin = data.indexOf(BEGIN, 0, 'latin1');
    begin >= 0;
    begin = data.indexOf(BEGIN, Math.max(copied, begin + 1), 'latin1')
  ) {
    const labelStart = begin + BEGIN.length;
    const labelEnd = data.indexOf(DASHES, labelStart, 'latin1');
    const wellFormed = labelEnd >= 0 && !hasNewline(data, labelStart, labelEnd);
    // A malformed BEGIN line's label runs to the end of the line; looked for only then, as parsing stops there.
    const label = data.toString('latin1', labelStart, wellFormed ? labelEnd : lineEndAfter(data, labelStart));
    if (!label.includes('PRIVATE KEY')) continue;
    kept.push(data.subarray(copied, begin));
    if (!wellFormed || !LABEL.test(label)) {
      // Malformed BEGIN line: parsing stops here anyway, and the rest may be key bytes.
      kept.push(Buffer.from(`${BEGIN}${REDACTED_KEY_LABEL}\n`));
      copied = data.length;
      break;
    }
    kept.push(Buffer.from(`${BEGIN}${REDACTED_KEY_LABEL}${DASHES}\n`));
    const bodyStart = labelEnd + DASHES.length;
    const endMarker = `-----END ${label}-----`;
    const end = data.indexOf(endMarker, bodyStart, 'latin1');
    const nextBegin = data.indexOf(BEGIN, bodyStart, 'latin1');
    if (end < 0 || (nextBegin >= 0 && nextBegin < end)) {
      // Unterminated, as findPemBlocks sees it: drop the body up to the next block (or the end) and no END line.
      copied = nextBegin < 0 ? data.length : nextBegin;
      continue;
    }
    kept.push(Buffer.from(`-----END ${REDACTED_KEY_LABEL}-----`));
    copied = end + endMarker.length;
  }
  kept.push(data.subarray(copied));
  return Buffer.concat(kept).toString('utf8');
}
