/**
 * docker-compose.yml and the Dockerfile, checked without a Docker engine: the compose file is
 * parsed (a small parser for the YAML subset it uses, below), and every service command that runs
 * the image's entrypoint (`node bin/pbft.mjs`) is parsed by the real `pbft` program with recording
 * actions, so a flag the CLI does not accept, or a bad value, fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { createProgram, type CliActions } from '../../src/cli/main.ts';
import type { ReplicaFlags } from '../../src/cli/replica.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ------------------------------------------------------------------------------------------------
// A YAML subset: block maps and sequences by indentation, `#` comments, plain / single- / double-
// quoted scalars, and flow collections written as JSON (["a", "b"], {}). Anything else throws.

type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  no: number;
}

function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote !== null) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"') i++;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function scalar(raw: string, no: number): Yaml {
  const text = raw.trim();
  if (text === '' || text === '~' || text === 'null') return null;
  if (text.startsWith('[') || text.startsWith('{') || text.startsWith('"')) {
    try {
      return JSON.parse(text) as Yaml;
    } catch {
      throw new Error(`line ${no}: unsupported flow value ${text}`);
    }
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new Error(`line ${no}: unterminated quote`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[&*!|>%@`]/.test(text)) throw new Error(`line ${no}: unsupported YAML feature in ${text}`);
  return text;
}

function parseYaml(source: string): Yaml {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    if (raw.includes('\t')) throw new Error(`line ${i + 1}: tab`);
    const text = stripComment(raw).trimEnd();
    if (text.trim() === '' || text.trim() === '---') return;
    lines.push({ indent: text.length - text.trimStart().length, text: text.trim(), no: i + 1 });
  });
  let pos = 0;
  const block = (indent: number): Yaml => {
    const first = lines[pos];
    if (first === undefined || first.indent < indent) return null;
    if (first.text.startsWith('- ') || first.text === '-') {
      const seq: Yaml[] = [];
      while (pos < lines.length && lines[pos]!.indent === first.indent && lines[pos]!.text.startsWith('-')) {
        const item = lines[pos]!;
        pos++;
        const rest = item.text.slice(1).trim();
        if (/^[^"'[{][^:]*:(\s|$)/.test(rest)) throw new Error(`line ${item.no}: maps inside sequences are not supported`);
        seq.push(rest === '' ? block(item.indent + 1) : scalar(rest, item.no));
      }
      return seq;
    }
    const map: { [key: string]: Yaml } = {};
    while (pos < lines.length && lines[pos]!.indent === first.indent) {
      const line = lines[pos]!;
      const m = /^("[^"]*"|'[^']*'|[^:]+?):(\s+(.*))?$/.exec(line.text);
      if (m === null) throw new Error(`line ${line.no}: expected "key: value", got ${line.text}`);
      const key = scalar(m[1]!, line.no) as string;
      if (key in map) throw new Error(`line ${line.no}: duplicate key ${key}`);
      pos++;
      const value = m[3];
      map[key] = value !== undefined && value !== '' ? scalar(value, line.no) : lines[pos] !== undefined && lines[pos]!.indent > line.indent ? block(lines[pos]!.indent) : null;
    }
    if (pos < lines.length && lines[pos]!.indent > first.indent) throw new Error(`line ${lines[pos]!.no}: bad indentation`);
    return map;
  };
  const doc = block(0);
  if (pos !== lines.length) throw new Error(`line ${lines[pos]!.no}: unexpected indentation`);
  return doc;
}

// ------------------------------------------------------------------------------------------------

type YamlMap = { [key: string]: Yaml };
const asMap = (v: Yaml | undefined, what: string): YamlMap => {
  assert.ok(v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v), `${what} is a map`);
  return v as YamlMap;
};
const asList = (v: Yaml | undefined, what: string): string[] => {
  assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'), `${what} is a list of strings`);
  return v as string[];
};

/** Parses a command line with the real `pbft` program; returns the replica flags it would run with. */
async function dryRun(args: string[]): Promise<{ command: string; flags: unknown }> {
  let seen: { command: string; flags: unknown } | undefined;
  const record = (command: string) => async (...a: unknown[]): Promise<number> => {
    seen = { command, flags: a.length === 1 ? a[0] : a };
    return 0;
  };
  const actions: CliActions = { replica: record('replica'), start: record('start'), client: record('client'), status: record('status') };
  const errors: string[] = [];
  const program = createProgram({ out: () => undefined, err: (line) => errors.push(line) }, actions, () => undefined);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new Error(`pbft ${args.join(' ')}: ${errors.join(' ') || err.message}`);
    throw err;
  }
  assert.ok(seen !== undefined, `pbft ${args.join(' ')} ran no command`);
  return seen;
}

test('the YAML subset parser', () => {
  const doc = parseYaml(['# comment', 'a:', '  b: "x # not a comment"  # a comment', '  c: ["y", "z"]', '  d:', '    - one', "    - 'two'", 'e: {}', 'f:'].join('\n'));
  assert.deepEqual(doc, { a: { b: 'x # not a comment', c: ['y', 'z'], d: ['one', 'two'] }, e: {}, f: null });
  assert.throws(() => parseYaml('a: &anchor x'), /unsupported/);
  assert.throws(() => parseYaml('a:\n  - b: c'), /not supported/);
});

test('the dry run rejects what the CLI rejects', async () => {
  await assert.rejects(dryRun(['replica', '--id', '0', '--bogus']), /unknown option '--bogus'/);
  await assert.rejects(dryRun(['replica', '--id', 'x']), /invalid/);
  assert.deepEqual((await dryRun(['replica', '--id', '2'])).command, 'replica');
});

test('docker-compose.yml: four replica services the CLI accepts, keyring read-only, one data volume each, ports published', async () => {
  const compose = asMap(parseYaml(readFileSync(`${ROOT}/docker-compose.yml`, 'utf8')), 'the file');
  const services = asMap(compose.services, 'services');
  const volumes = asMap(compose.volumes, 'volumes');
  const dataVolumes = new Set<string>();
  for (let id = 0; id < 4; id++) {
    const name = `replica${id}`;
    const service = asMap(services[name], name);
    assert.equal(service.entrypoint, undefined, `${name} runs the image's entrypoint (node bin/pbft.mjs)`);
    const command = asList(service.command, `${name}.command`);
    const run = await dryRun(command);
    assert.equal(run.command, 'replica');
    const flags = run.flags as ReplicaFlags;
    assert.equal(flags.id, id, `${name} runs replica ${id}`);
    assert.equal(flags.keys, '/keys');
    assert.equal(flags.data, '/data');

    const mounts = asList(service.volumes, `${name}.volumes`);
    assert.ok(mounts.includes('./keys:/keys:ro'), `${name} mounts the keyring read-only at /keys`);
    const data = mounts.map((m) => m.split(':')).find(([, target]) => target === '/data');
    assert.ok(data !== undefined, `${name} mounts a volume at /data`);
    assert.ok(data[0]! in volumes, `${name}'s data volume ${data[0]} is a named volume`);
    assert.ok(!dataVolumes.has(data[0]!), `${name} has its own data volume`);
    dataVolumes.add(data[0]!);

    // Its port (7001 + id with the default keyring) is published, by itself or by the service
    // whose network namespace it shares.
    const networkMode = service.network_mode;
    const owner = typeof networkMode === 'string' && networkMode.startsWith('service:') ? asMap(services[networkMode.slice(8)], networkMode) : service;
    const published = asList(owner.ports, `ports of ${name}'s network`).map((p) => p.split(':').pop());
    const listen = flags.listen;
    assert.ok(listen !== undefined && (listen.host === '0.0.0.0' || listen.host === '::'), `${name} listens on every interface (published ports reach it)`);
    assert.ok(published.includes(String(7001 + id)), `port ${7001 + id} of ${name} is published`);
  }
  // Every other service that runs the CLI must be accepted as well.
  for (const [name, value] of Object.entries(services)) {
    const service = asMap(value, name);
    if (service.entrypoint !== undefined || service.command === undefined) continue;
    await dryRun(asList(service.command, `${name}.command`));
  }
});

test('Dockerfile: node:20-slim, npm ci, entrypoint node bin/pbft.mjs', () => {
  const dockerfile = readFileSync(`${ROOT}/Dockerfile`, 'utf8');
  assert.match(dockerfile, /^FROM node:20-slim$/m);
  assert.match(dockerfile, /^RUN npm ci\b/m);
  assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/pbft\.mjs"\]$/m);
  for (const path of ['bin', 'src', 'package.json', 'package-lock.json']) assert.match(dockerfile, new RegExp(`^COPY .*\\b${path.replace('.', '\\.')}\\b`, 'm'), `copies ${path}`);
});
