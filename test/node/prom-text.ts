/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it throws on
 * anything a Prometheus server would refuse or that the format forbids, with the line number.
 *
 *   - `# HELP name text` (at most once per family) and `# TYPE name type` (at most once, before
 *     the family's samples); other `#` lines are comments; empty lines are ignored
 *   - samples `name{label="value",...} value [timestamp]`: names, label names, escapes (\\ \" \n
 *     only), values (floats; NaN and Inf in any case, as Prometheus's Go parser) and integer
 *     timestamps checked
 *   - a family's samples are contiguous; a sample's name belongs to its family's type (histogram:
 *     _bucket with `le`, _sum, _count; summary: quantile samples, _sum, _count); no series twice
 *   - histograms: per label set, `le` increasing and ending with +Inf, cumulative counts that never
 *     decrease, _count equal to the +Inf bucket, a _sum
 */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

class ParseError extends Error {}

/** A float as Prometheus reads one (Go's ParseFloat: NaN and Inf in any case, e.g. prom-client's "Nan"). */
function parseValue(text: string, where: string): number {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new ParseError(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** The labels between braces, starting at `line[start] === '{'`; returns them and the index after '}'. */
function parseLabels(line: string, start: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0) throw new ParseError(`${where}: label without '='`);
    const name = line.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new ParseError(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new ParseError(`${where}: label ${name} twice`);
    if (line[eq + 1] !== '"') throw new ParseError(`${where}: label value of ${name} is not quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const ch = line[j];
      if (ch === undefined) throw new ParseError(`${where}: unterminated label value`);
      if (ch === '"') break;
      if (ch === '\\') {
        const next = line[j + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new ParseError(`${where}: bad escape \\${next ?? ''}`);
        j += 2;
        continue;
      }
      value += ch;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new ParseError(`${where}: expected ',' or '}' after label ${name}`);
  }
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(name);
  if (exact !== undefined) return exact;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f !== undefined && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new ParseError(`${f.name}_bucket without le`);
      g.buckets.push([parseValue(le, `${f.name} le`), s.value]);
    } else if (le !== undefined) {
      throw new ParseError(`${s.name} has an le label`);
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new ParseError(`${s.name} in histogram ${f.name}`);
  }
  for (const [key, g] of groups) {
    const where = `histogram ${f.name} ${key}`;
    if (g.buckets.length === 0) throw new ParseError(`${where}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new ParseError(`${where}: le not increasing`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new ParseError(`${where}: bucket counts decrease`);
    }
    const last = g.buckets[g.buckets.length - 1]!;
    if (last[0] !== Infinity) throw new ParseError(`${where}: no +Inf bucket`);
    if (g.count === undefined || g.sum === undefined) throw new ParseError(`${where}: _count or _sum missing`);
    if (g.count !== last[1]) throw new ParseError(`${where}: _count ${g.count} differs from the +Inf bucket ${last[1]}`);
  }
}

/** Parses an exposition; throws with the line number on the first violation. */
export function parsePrometheusText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new ParseError('the exposition does not end with a newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const closed = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  lines.pop();
  for (const [index, line] of lines.entries()) {
    const where = `line ${index + 1}`;
    try {
      if (line.trim() === '') continue;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
        if (m === null) continue; // a comment
        const [, keyword, name, rest = ''] = m;
        if (!METRIC_NAME.test(name!)) throw new ParseError(`bad metric name ${JSON.stringify(name)}`);
        let f = families.get(name!);
        if (f !== undefined && closed.has(name!)) throw new ParseError(`${keyword} for ${name} after its samples ended`);
        if (f === undefined) {
          f = { name: name!, type: 'untyped', samples: [] };
          families.set(name!, f);
          (f as Family & { typed?: boolean }).typed = false;
        }
        if (current !== undefined && current !== f) closed.add(current.name);
        current = f;
        if (keyword === 'HELP') {
          if (f.help !== undefined) throw new ParseError(`HELP for ${name} twice`);
          f.help = rest;
        } else {
          const ff = f as Family & { typed?: boolean };
          if (ff.typed === true) throw new ParseError(`TYPE for ${name} twice`);
          if (f.samples.length > 0) throw new ParseError(`TYPE for ${name} after its samples`);
          if (!TYPES.has(rest as MetricType)) throw new ParseError(`unknown type ${JSON.stringify(rest)}`);
          f.type = rest as MetricType;
          ff.typed = true;
        }
        continue;
      }
      const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
      if (nameMatch === null) throw new ParseError('a sample without a metric name');
      const name = nameMatch[0];
      let pos = name.length;
      let labels: Record<string, string> = {};
      if (line[pos] === '{') ({ labels, end: pos } = parseLabels(line, pos, where));
      if (line[pos] !== ' ') throw new ParseError('expected a space before the value');
      const fields = line.slice(pos + 1).split(' ');
      if (fields.length < 1 || fields.length > 2 || fields[0] === '') throw new ParseError(`expected "value [timestamp]", got ${JSON.stringify(line.slice(pos + 1))}`);
      const value = parseValue(fields[0]!, where);
      if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new ParseError(`bad timestamp ${fields[1]}`);
      let f = familyOf(name, families);
      if (f === undefined) {
        // A sample with no HELP or TYPE: an untyped family of its own.
        f = { name, type: 'untyped', samples: [] };
        families.set(name, f);
      }
      if (closed.has(f.name)) throw new ParseError(`samples of ${f.name} are not contiguous`);
      if (current !== undefined && current !== f) closed.add(current.name);
      current = f;
      if ((f.type === 'counter' || f.type === 'gauge' || f.type === 'untyped') && name !== f.name) throw new ParseError(`${name} in ${f.type} ${f.name}`);
      if (f.type === 'summary' && name === f.name && labels.quantile === undefined) throw new ParseError(`${name}: summary sample without quantile`);
      if (f.type === 'counter' && !(value >= 0)) throw new ParseError(`counter ${name} is ${value}`);
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (series.has(key)) throw new ParseError(`series ${key} twice`);
      series.add(key);
      f.samples.push({ name, labels, value });
    } catch (err) {
      if (err instanceof ParseError) throw new Error(`${where}: ${err.message}: ${JSON.stringify(line)}`);
      throw err;
    }
  }
  for (const f of families.values()) {
    delete (f as Family & { typed?: boolean }).typed;
    if (f.type === 'histogram') {
      try {
        checkHistogram(f);
      } catch (err) {
        if (err instanceof ParseError) throw new Error(err.message);
        throw err;
      }
    }
  }
  return families;
}

/** The samples of one family, or a clear failure. */
export function familyNamed(families: Map<string, Family>, name: string, type: MetricType): Family {
  const f = families.get(name);
  if (f === undefined) throw new Error(`no metric family ${name}`);
  if (f.type !== type) throw new Error(`${name} is a ${f.type}, expected ${type}`);
  return f;
}
