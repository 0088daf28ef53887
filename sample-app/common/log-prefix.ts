/** Nest's own line prefix, after the colour code it may start with. */
const NEST_PREFIX = /^((?:\x1b\[[0-9;]*m)?)\[Nest\] /;

/** One output line of a service with one prefix, `[inventory]`: Nest's `[Nest]` is replaced, not prefixed again. */
export function prefixLine(name: string, line: string): string {
  if (line === '') return line;
  return NEST_PREFIX.test(line) ? line.replace(NEST_PREFIX, (_, colour: string) => `${colour}[${name}] `) : `[${name}] ${line}`;
}

/** Prefixes a child's output line by line; a line split across chunks is held until it is complete. */
export class LinePrefixer {
  #partial = '';

  constructor(private readonly name: string) {}

  /** The complete lines of `chunk` (with what was held before), prefixed; holds the incomplete tail. */
  push(chunk: string): string {
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    return lines.map((line) => `${prefixLine(this.name, line)}\n`).join('');
  }
}
