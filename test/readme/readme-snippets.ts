/** A fenced TypeScript block of the README, where it is and where it goes in the snippet project. */
export interface Snippet {
  /** Path in the snippet project, e.g. `src/main.ts` (from ` ```ts file=src/main.ts `) or `snippets/line-216.ts`. */
  readonly file: string;
  /** 1-based line in the README of the block's first code line. */
  readonly line: number;
  readonly code: string;
}

const FENCE = /^```(\S*)(.*)$/;

/**
 * The README's ` ```ts ` blocks meant to compile: every one except those marked ` ```ts fragment ` (a part of a
 * file, documented in the README's "Code blocks in this README").
 */
export function extractSnippets(markdown: string): { snippets: Snippet[]; fragments: number } {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  let fragments = 0;
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (open === null) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith('```'));
    if (end === -1) throw new Error(`README.md:${i + 1}: a code block is never closed`);
    const [, language, info] = open;
    if (language === 'ts' || language === 'typescript') {
      const words = info!.trim().split(/\s+/).filter(Boolean);
      if (words.includes('fragment')) fragments++;
      else {
        const file = words.find((word) => word.startsWith('file='))?.slice('file='.length) ?? `snippets/line-${i + 1}.ts`;
        snippets.push({ file, line: i + 2, code: lines.slice(i + 1, end).join('\n') });
      }
    }
    i = end;
  }
  return { snippets, fragments };
}
