/**
 * A strict parser of the Dockerfile syntax this repository uses (no Docker engine here): line
 * continuations, comments, instructions (names checked), exec forms as JSON arrays of strings (a
 * broken one is an error, where Docker would silently fall back to the shell form), and HEALTHCHECK
 * options (Go durations, a retry count) with their CMD or NONE.
 */
export interface Instruction {
  /** Upper case: FROM, RUN, COPY, USER, HEALTHCHECK, ... */
  name: string;
  /** The text after the name, continuation lines joined. */
  args: string;
  /** For exec forms: the JSON array. */
  exec?: string[];
  line: number;
}

export interface Healthcheck {
  options: Record<string, string>;
  /** undefined for HEALTHCHECK NONE. */
  cmd?: string[];
}

const NAMES = new Set([
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD',
  'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
]);
/** Instructions whose argument may be a JSON array (exec form). */
const EXEC_FORMS = new Set(['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'VOLUME', 'COPY', 'ADD']);

function execForm(text: string, where: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${where}: exec form is not valid JSON: ${text}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((x) => typeof x === 'string')) {
    throw new Error(`${where}: exec form must be a non-empty JSON array of strings`);
  }
  return parsed as string[];
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const start = i;
    let line = lines[i]!.trim();
    i++;
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\')) {
      line = line.slice(0, -1);
      // Comment lines inside a continued instruction are dropped, as Docker does.
      while (i < lines.length && lines[i]!.trim().startsWith('#')) i++;
      if (i >= lines.length) throw new Error(`line ${start + 1}: continuation at the end of the file`);
      line += ' ' + lines[i]!.trim();
      i++;
    }
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const name = m[1]!.toUpperCase();
    const where = `line ${start + 1} (${name})`;
    if (!NAMES.has(name)) throw new Error(`${where}: unknown instruction`);
    const args = m[2]!.trim();
    if (args === '') throw new Error(`${where}: no arguments`);
    const instruction: Instruction = { name, args, line: start + 1 };
    if (EXEC_FORMS.has(name)) {
      const exec = execForm(args, where);
      if (exec !== undefined) instruction.exec = exec;
    }
    if (name === 'HEALTHCHECK') healthcheckOf(instruction);
    out.push(instruction);
  }
  const first = out.find((x) => x.name !== 'ARG');
  if (first?.name !== 'FROM') throw new Error('the first instruction (after ARGs) must be FROM');
  return out;
}

/** A Go duration as Docker reads HEALTHCHECK options: e.g. 30s, 1m30s, 500ms; seconds. */
export function goDurationSeconds(text: string): number {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) throw new Error(`not a duration: ${text}`);
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(part[1]) * unit[part[2]!]!;
  return total;
}

export function healthcheckOf(h: Instruction): Healthcheck {
  const where = `line ${h.line} (HEALTHCHECK)`;
  let rest = h.args;
  const options: Record<string, string> = {};
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s+(.*)$/.exec(rest);
    if (m === null) break;
    const [, key, value, tail] = m;
    if (!['interval', 'timeout', 'start-period', 'start-interval', 'retries'].includes(key!)) throw new Error(`${where}: unknown option --${key}`);
    if (key! in options) throw new Error(`${where}: --${key} twice`);
    if (key === 'retries') {
      if (!/^[1-9]\d*$/.test(value!)) throw new Error(`${where}: --retries must be a positive integer`);
    } else if (!(goDurationSeconds(value!) > 0)) throw new Error(`${where}: --${key} must be positive`);
    options[key!] = value!;
    rest = tail!;
  }
  if (/^NONE$/i.test(rest)) return { options };
  const cmd = /^CMD\s+(.*)$/i.exec(rest);
  if (cmd === null) throw new Error(`${where}: expected CMD or NONE after the options, got ${rest}`);
  const exec = execForm(cmd[1]!, where);
  return { options, cmd: exec ?? ['/bin/sh', '-c', cmd[1]!] };
}
