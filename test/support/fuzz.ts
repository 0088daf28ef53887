/*
 * Deterministic fuzzing for the hand-written parsers: a seeded PRNG and mutators over bytes, DER trees and header
 * text. No dependency; the same seed gives the same cases, so a failure names its seed and case number and replays.
 */

/** mulberry32: a small seeded 32-bit PRNG, enough to pick mutations (not for anything secret). */
export class Prng {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/** Byte values that sit on boundaries of DER and protobuf encodings. */
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff, 0x30, 0x31, 0xa0, 0xa3, 0x86, 0x1f, 0x0a, 0x12];

/** One random byte-level mutation: flips, boundary bytes, deletions, insertions, duplications, truncation. */
export function mutateBytes(rng: Prng, input: Buffer): Buffer {
  const out = Buffer.from(input);
  const n = out.length;
  if (n === 0) return rng.bytes(1 + rng.int(8));
  switch (rng.int(7)) {
    case 0: {
      // 1 to 8 bit flips.
      for (let k = 1 + rng.int(8); k > 0; k--) out[rng.int(n)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: {
      out[rng.int(n)] = rng.pick(INTERESTING_BYTES);
      return out;
    }
    case 2: {
      const at = rng.int(n);
      return Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + rng.int(16))]);
    }
    case 3: {
      const at = rng.int(n + 1);
      return Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(8)), out.subarray(at)]);
    }
    case 4: {
      const from = rng.int(n);
      const to = Math.min(n, from + 1 + rng.int(64));
      const at = rng.int(n + 1);
      return Buffer.concat([out.subarray(0, at), out.subarray(from, to), out.subarray(at)]);
    }
    case 5:
      return out.subarray(0, rng.int(n));
    default: {
      out[rng.int(n)] = rng.next() & 0xff;
      return out;
    }
  }
}

/** A DER element as a tree: constructed elements (and OCTET/BIT STRINGs that hold DER) keep their children. */
export interface DerNode {
  tag: number;
  /** Contents of a primitive element. */
  content: Buffer;
  /** Children of a constructed or encapsulating element. */
  children: DerNode[] | undefined;
  /** Bytes before the children (the unused-bits octet of a BIT STRING). */
  prefix: Buffer;
  /** When set, the length written instead of the real one (in 4-byte long form). */
  lengthOverride?: number;
}

function readTlv(buf: Buffer, pos: number, end: number): { tag: number; start: number; end: number } | undefined {
  if (pos + 2 > end) return undefined;
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) return undefined;
  let length = buf[pos + 1]!;
  let at = pos + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || at + count > end) return undefined;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[at++]!;
  }
  if (at + length > end) return undefined;
  return { tag, start: at, end: at + length };
}

function parseChildren(buf: Buffer, pos: number, end: number, depth: number): DerNode[] | undefined {
  const nodes: DerNode[] = [];
  while (pos < end) {
    const tlv = readTlv(buf, pos, end);
    if (tlv === undefined) return undefined;
    nodes.push(parseNode(buf, tlv.tag, tlv.start, tlv.end, depth + 1));
    pos = tlv.end;
  }
  return nodes;
}

function parseNode(buf: Buffer, tag: number, start: number, end: number, depth: number): DerNode {
  const content = buf.subarray(start, end);
  if (depth < 32) {
    if (tag & 0x20) {
      const children = parseChildren(buf, start, end, depth);
      if (children !== undefined) return { tag, content, children, prefix: Buffer.alloc(0) };
    } else if (tag === 0x04 && end > start) {
      const children = parseChildren(buf, start, end, depth);
      if (children !== undefined) return { tag, content, children, prefix: Buffer.alloc(0) };
    } else if (tag === 0x03 && end - start > 1 && buf[start] === 0) {
      const children = parseChildren(buf, start + 1, end, depth);
      if (children !== undefined) return { tag, content, children, prefix: buf.subarray(start, start + 1) };
    }
  }
  return { tag, content, children: undefined, prefix: Buffer.alloc(0) };
}

/** Parses DER into a tree (leniently: anything that does not parse as children stays primitive content). */
export function parseDerTree(der: Buffer): DerNode {
  const tlv = readTlv(der, 0, der.length);
  if (tlv === undefined) throw new Error('not DER');
  return parseNode(der, tlv.tag, tlv.start, tlv.end, 0);
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Writes a tree back as DER with minimal lengths, except where a node carries a length override. */
export function encodeDerTree(node: DerNode): Buffer {
  const body = node.children === undefined ? node.content : Buffer.concat([node.prefix, ...node.children.map(encodeDerTree)]);
  let length: Buffer;
  if (node.lengthOverride === undefined) {
    length = encodeLength(body.length);
  } else {
    length = Buffer.alloc(5);
    length[0] = 0x84;
    length.writeUInt32BE(node.lengthOverride >>> 0, 1);
  }
  return Buffer.concat([Buffer.from([node.tag]), length, body]);
}

function cloneTree(node: DerNode): DerNode {
  return { ...node, children: node.children?.map(cloneTree) };
}

function allNodes(node: DerNode, into: DerNode[] = []): DerNode[] {
  into.push(node);
  for (const child of node.children ?? []) allNodes(child, into);
  return into;
}

/**
 * One structure-aware mutation of a DER tree, re-encoded with consistent outer lengths so that the mutation reaches
 * the field it hits: a field removed, duplicated, swapped with its neighbour, moved to another container, a tag
 * changed, primitive content replaced by byte-level mutation, or one length inflated (up to 2^32 - 1).
 */
export function mutateDer(rng: Prng, tree: DerNode): Buffer {
  const root = cloneTree(tree);
  const nodes = allNodes(root);
  const parents = nodes.filter((n) => n.children !== undefined && n.children.length > 0);
  const node = rng.pick(nodes);
  // A tree without any constructed element left can only have its content or tag changed.
  switch (parents.length === 0 ? 4 + rng.int(3) : rng.int(8)) {
    case 0: {
      const parent = rng.pick(parents);
      parent.children!.splice(rng.int(parent.children!.length), 1);
      break;
    }
    case 1: {
      const parent = rng.pick(parents);
      const at = rng.int(parent.children!.length);
      parent.children!.splice(at, 0, cloneTree(parent.children![at]!));
      break;
    }
    case 2: {
      const parent = rng.pick(parents);
      const at = rng.int(parent.children!.length);
      if (at + 1 < parent.children!.length) {
        const kids = parent.children!;
        [kids[at], kids[at + 1]] = [kids[at + 1]!, kids[at]!];
      }
      break;
    }
    case 3: {
      const from = rng.pick(parents);
      const to = rng.pick(parents);
      to.children!.splice(rng.int(to.children!.length + 1), 0, cloneTree(rng.pick(from.children!)));
      break;
    }
    case 4:
      node.tag = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.next() & 0xff;
      break;
    case 5: {
      node.content = mutateBytes(rng, node.children === undefined ? node.content : encodeDerTree(node).subarray(2));
      node.children = undefined;
      break;
    }
    case 6: {
      const real = encodeDerTree({ ...node, lengthOverride: undefined }).length;
      node.lengthOverride = rng.pick([
        0xffff_ffff,
        0x8000_0000,
        0x7fff_ffff,
        0x1_0000 + rng.int(1000),
        real,
        real + 1,
        rng.next(),
      ]);
      break;
    }
    default: {
      const parent = rng.pick(parents);
      parent.children!.push({
        tag: rng.pick(INTERESTING_BYTES),
        content: rng.bytes(rng.int(6)),
        children: undefined,
        prefix: Buffer.alloc(0),
      });
    }
  }
  return encodeDerTree(root);
}

/** `depth` SEQUENCEs nested in one another around `inner`, each with a long-form length. */
export function nestedSequences(depth: number, inner: Buffer = Buffer.alloc(0)): Buffer {
  let der = inner;
  for (let i = 0; i < depth; i++) der = Buffer.concat([Buffer.from([0x30]), encodeLength(der.length), der]);
  return der;
}

/** One random text mutation over header-like strings, biased toward the characters the grammars care about. */
export function mutateText(rng: Prng, input: string, alphabet: string): string {
  const n = input.length;
  if (n === 0) return alphabet[rng.int(alphabet.length)]!;
  const at = rng.int(n);
  switch (rng.int(7)) {
    case 0:
      return input.slice(0, at) + alphabet[rng.int(alphabet.length)]! + input.slice(at + 1);
    case 1:
      return input.slice(0, at) + alphabet[rng.int(alphabet.length)]! + input.slice(at);
    case 2:
      return input.slice(0, at) + input.slice(at + 1 + rng.int(8));
    case 3: {
      const to = Math.min(n, at + 1 + rng.int(40));
      const where = rng.int(n + 1);
      return input.slice(0, where) + input.slice(at, to) + input.slice(where);
    }
    case 4:
      return input.slice(0, at);
    case 5:
      return input.slice(0, at) + String.fromCharCode(rng.int(256)) + input.slice(at + 1);
    default: {
      const c = input.charCodeAt(at);
      return input.slice(0, at) + String.fromCharCode(c ^ (1 << rng.int(7))) + input.slice(at + 1);
    }
  }
}

/** Runs `f` and returns how long it took in milliseconds, and what it returned or threw. */
export function timed<T>(f: () => T): { ms: number; value?: T; error?: unknown } {
  const start = performance.now();
  try {
    const value = f();
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

/** A short description of what a case threw, for assertion messages. */
export function describeThrown(error: unknown): string {
  if (error instanceof Error)
    return `${error.constructor.name}(${(error as { code?: string }).code ?? ''}): ${error.message.slice(0, 200)}`;
  return String(error);
}
