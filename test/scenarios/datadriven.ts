/**
 * A small datadriven file format (in the style of cockroachdb/datadriven as used by etcd-io/raft's
 * testdata/*.txt), independent of PBFT:
 *
 *     # a comment (kept as is when the file is rewritten)
 *     cmd arg key=value key=(a,b)
 *     ----
 *     expected output line
 *     expected output line
 *     <blank line>
 *
 * A directive is one command line, then `----`, then its expected output up to the next blank line
 * (or the end of the file). Output never contains blank lines (the runner drops them). Lines starting
 * with `#` and blank lines between directives are comments.
 *
 * `runDataDriven(text, handler)` runs every directive in order and returns the file as it would read
 * with the actual outputs; `unifiedDiff` shows expected against actual with line context.
 */

export interface Arg {
  key: string;
  /** `key=a,b` and `key=(a,b)` give two values; a bare word gives none. */
  vals: string[];
}

export interface Directive {
  /** 1-based line of the command in the file. */
  line: number;
  cmd: string;
  args: Arg[];
  /** The command line as written. */
  text: string;
  expected: string[];
}

/** A file: directives and the comment / blank lines before each (and after the last). */
export interface ParsedFile {
  items: Array<{ before: string[]; directive: Directive }>;
  trailing: string[];
}

export class ScriptError extends Error {}

export function parseArgs(rest: string): Arg[] {
  const args: Arg[] = [];
  const re = /\s*([^\s=]+)(?:=(\([^)]*\)|\S*))?/y;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < rest.length) {
    re.lastIndex = pos;
    m = re.exec(rest);
    if (!m) break;
    pos = re.lastIndex;
    const key = m[1]!;
    let raw = m[2];
    if (raw === undefined) {
      args.push({ key, vals: [] });
      continue;
    }
    if (raw.startsWith('(') && raw.endsWith(')')) raw = raw.slice(1, -1);
    args.push({ key, vals: raw === '' ? [''] : raw.split(',').map((s) => s.trim()) });
    if (/^\s*$/.test(rest.slice(pos))) break;
  }
  return args;
}

export function parseFile(text: string, name = '<script>'): ParsedFile {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const items: ParsedFile['items'] = [];
  let before: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      before.push(line);
      i++;
      continue;
    }
    const cmdLine = i + 1;
    const text = line.trim();
    const [cmd, ...restParts] = text.split(/\s+/);
    const args = parseArgs(restParts.join(' '));
    i++;
    if (lines[i] !== '----') throw new ScriptError(`${name}:${cmdLine}: expected '----' after '${text}'`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') expected.push(lines[i++]!);
    items.push({ before, directive: { line: cmdLine, cmd: cmd!, args, text, expected } });
    before = [];
  }
  return { items, trailing: before };
}

/** The file's text with these outputs in place of the expected ones. */
export function render(file: ParsedFile, outputs: string[][]): string {
  const out: string[] = [];
  file.items.forEach((item, k) => {
    out.push(...item.before);
    out.push(item.directive.text, '----', ...outputs[k]!, '');
  });
  out.push(...file.trailing);
  return normalize(out.join('\n')) + '\n';
}

/** Collapses runs of blank lines to one and makes sure an output is followed by a blank line. */
function normalize(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.trim() === '' && out.length > 0 && out[out.length - 1]!.trim() === '') continue;
    out.push(l.trim() === '' ? '' : l);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out.join('\n');
}

export type Handler = (d: Directive) => string;

export interface RunResult {
  /** The file as it would read with the actual outputs. */
  actual: string;
  /** The file as given (normalized the same way). */
  expected: string;
  ok: boolean;
  /** The first directive whose output differs. */
  firstMismatch?: Directive;
}

/** Runs every directive; an exception in the handler becomes the directive's output (`error: ...`). */
export function runDataDriven(text: string, handler: Handler, name = '<script>'): RunResult {
  const file = parseFile(text, name);
  const outputs: string[][] = [];
  let firstMismatch: Directive | undefined;
  for (const { directive } of file.items) {
    let out: string;
    try {
      out = handler(directive);
    } catch (err) {
      if (!(err instanceof ScriptError)) throw err;
      out = `error: ${err.message}`;
    }
    const lines = out.split('\n').filter((l) => l.trim() !== '');
    outputs.push(lines);
    if (!firstMismatch && lines.join('\n') !== directive.expected.join('\n')) firstMismatch = directive;
  }
  const actual = render(file, outputs);
  const expected = render(
    file,
    file.items.map((i) => i.directive.expected),
  );
  return { actual, expected, ok: firstMismatch === undefined, ...(firstMismatch ? { firstMismatch } : {}) };
}

/**
 * A unified diff (expected -> actual) with `context` lines around each change. Hunk headers name the
 * step whose output holds the hunk's first change, as git names the enclosing function.
 */
export function unifiedDiff(expected: string, actual: string, opts: { from?: string; to?: string; context?: number } = {}): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const context = opts.context ?? 3;
  // LCS table (files are small: a few hundred lines).
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  type Op = { kind: ' ' | '-' | '+'; text: string; ai: number; bi: number };
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) ops.push({ kind: ' ', text: a[i]!, ai: i++, bi: j++ });
    else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) ops.push({ kind: '-', text: a[i]!, ai: i++, bi: j });
    else ops.push({ kind: '+', text: b[j]!, ai: i, bi: j++ });
  }
  const changed = ops.map((o, k) => (o.kind !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (changed.length === 0) return '';
  const out = [`--- ${opts.from ?? 'expected'}`, `+++ ${opts.to ?? 'actual'}`];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = Math.min(ops.length, changed[k]! + context + 1);
    while (k + 1 < changed.length && changed[k + 1]! - context <= end) {
      k++;
      end = Math.min(ops.length, changed[k]! + context + 1);
    }
    k++;
    const hunk = ops.slice(start, end);
    const aStart = hunk[0]!.ai;
    const bStart = hunk[0]!.bi;
    const aLen = hunk.filter((o) => o.kind !== '+').length;
    const bLen = hunk.filter((o) => o.kind !== '-').length;
    // Name the step whose output holds the first change (the command line above the nearest '----').
    let label = '';
    const firstChange = hunk.find((o) => o.kind !== ' ')!.ai;
    for (let x = Math.min(firstChange, n) - 1; x >= 0; x--) {
      if (a[x] === '----' && x > 0) {
        label = ` ${a[x - 1]}`;
        break;
      }
    }
    out.push(`@@ -${aStart + 1},${aLen} +${bStart + 1},${bLen} @@${label}`);
    for (const o of hunk) out.push(`${o.kind}${o.text}`);
  }
  return out.join('\n');
}
