/**
 * The Dockerfile, checked without a Docker engine: it parses strictly (./dockerfile.ts); the image
 * runs as a numeric non-root user (nothing runs as root after the build steps); it has one
 * HEALTHCHECK, in exec form, with sane timings, whose script is copied into the image (and not
 * excluded by .dockerignore); the runtime stage preloads jemalloc that it installs; and that script, run as Docker runs it, calls a replica healthy or
 * unhealthy correctly (servers on 127.0.0.1 play the replica; test/unit/replica-config.test.ts
 * runs it against a real replica too).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goDurationSeconds, healthcheckOf, parseDockerfile, type Instruction } from './dockerfile.ts';
import { JEMALLOC_PATHS } from '../../src/node/malloc.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STEPS = parseDockerfile(readFileSync(`${ROOT}/Dockerfile`, 'utf8'));
const named = (name: string): Instruction[] => STEPS.filter((s) => s.name === name);

test('the image runs as a numeric non-root user, set after every build step', () => {
  const users = named('USER');
  assert.ok(users.length >= 1, 'there is a USER instruction');
  const last = users[users.length - 1]!;
  const [uid, gid] = last.args.split(':');
  assert.match(uid!, /^\d+$/, 'numeric uid (Kubernetes runAsNonRoot can check it)');
  assert.notEqual(Number(uid), 0, 'not root');
  if (gid !== undefined) assert.notEqual(Number(gid), 0, 'not the root group');
  const lastBuildStep = Math.max(...STEPS.filter((s) => s.name === 'RUN' || s.name === 'COPY' || s.name === 'ADD').map((s) => s.line));
  assert.ok(last.line > lastBuildStep, 'USER comes after the last RUN/COPY (nothing after it runs as root)');
  const entrypoint = named('ENTRYPOINT').at(-1);
  assert.ok(entrypoint !== undefined && entrypoint.line > last.line, 'ENTRYPOINT after USER');
});

test('the runtime image preloads jemalloc, installed and linked by a step of the same stage', () => {
  const stages = STEPS.filter((s) => s.name === 'FROM').map((s) => s.line);
  const runtimeFrom = stages[stages.length - 1]!;
  const env = named('ENV').filter((e) => e.line > runtimeFrom && /^LD_PRELOAD[= ]/.test(e.args));
  assert.equal(env.length, 1, 'one ENV LD_PRELOAD in the runtime stage');
  const lib = env[0]!.args.replace(/^LD_PRELOAD[= ]/, '').trim();
  assert.ok(JEMALLOC_PATHS.includes(lib), `${lib} is a path where the replica looks for jemalloc (src/node/malloc.ts)`);
  const installs = named('RUN').filter((r) => r.line > runtimeFrom && r.line < env[0]!.line);
  assert.ok(
    installs.some((r) => /apt-get install\b.*\blibjemalloc2\b/.test(r.args) && r.args.includes(`ln -s`) && r.args.includes(lib)),
    'a RUN before it installs libjemalloc2 and links it at that path',
  );
  const user = named('USER').at(-1)!;
  assert.ok(installs.every((r) => r.line < user.line), 'installed as root, before USER');
});

test('one HEALTHCHECK, exec form, sane timings, its script copied into the image', () => {
  const checks = named('HEALTHCHECK');
  assert.equal(checks.length, 1, 'exactly one HEALTHCHECK');
  const h = healthcheckOf(checks[0]!);
  assert.deepEqual(h.cmd, ['node', 'deploy/healthcheck.mjs'], 'exec form: no shell needed');
  const interval = goDurationSeconds(h.options.interval ?? '30s');
  const timeout = goDurationSeconds(h.options.timeout ?? '30s');
  assert.ok(timeout < interval, 'a check ends before the next one starts');
  assert.ok(goDurationSeconds(h.options['start-period'] ?? '0s') >= 30, 'a start period covers recovery from the data directory');
  assert.ok(Number(h.options.retries ?? '3') >= 2, 'one slow answer does not make it unhealthy');

  // The script is in the repository, copied to WORKDIR/deploy/healthcheck.mjs, and not ignored.
  const script = h.cmd![1]!;
  assert.ok(existsSync(`${ROOT}/${script}`), `${script} exists`);
  const workdir = named('WORKDIR').at(-1)!.args;
  const target = posix.join(workdir, script);
  const copied = named('COPY').some((c) => {
    const parts = c.exec ?? c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    const dest = posix.resolve(workdir, parts[parts.length - 1]!);
    return parts.slice(0, -1).some((src) => {
      const s = src.replace(/^\.\//, '').replace(/\/$/, '');
      return (s === script && (dest === target || dest === posix.dirname(target))) || (script.startsWith(`${s}/`) && target === posix.join(dest, script.slice(s.length + 1)));
    });
  });
  assert.ok(copied, `a COPY puts ${script} at ${target}`);
  const ignored = readFileSync(`${ROOT}/.dockerignore`, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const pattern of ignored) assert.ok(!(script === pattern || script.startsWith(`${pattern.replace(/\/$/, '')}/`)), `.dockerignore entry ${pattern} excludes ${script}`);
  assert.ok(h.cmd![0] === 'node' && named('FROM')[0]!.args.startsWith('node:'), 'node is in the image');
});

let server: http.Server;
let port: number;
let answer: { code: number; body: string } | 'hang' = { code: 200, body: '{}' };

before(async () => {
  server = http.createServer((req, res) => {
    if (answer === 'hang') return; // never answers
    assert.equal(req.url, '/status');
    res.statusCode = answer.code;
    res.setHeader('connection', 'close');
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.close();
  server.closeAllConnections();
});

/** Runs the HEALTHCHECK command as Docker does (working directory WORKDIR: here the repository). */
function healthcheck(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const proc = spawn('node', ['deploy/healthcheck.mjs'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => resolve({ code, out }));
  });
}

const STATUS = JSON.stringify({ clusterId: 'c1', id: 2, status: 'normal', view: 0, lastExecuted: 7 });

test('the healthcheck script: healthy only for a replica status, as the expected replica', async () => {
  const url = { PBFT_HEALTH_URL: `http://127.0.0.1:${port}/status` };
  answer = { code: 200, body: STATUS };
  let r = await healthcheck(url);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^healthy: replica 2 of cluster c1, normal/);
  // PBFT_LISTEN (the replica's own setting) gives the port when no URL is set.
  r = await healthcheck({ PBFT_LISTEN: `0.0.0.0:${port}` });
  assert.equal(r.code, 0, r.out);
  r = await healthcheck({ ...url, PBFT_ID: '2' });
  assert.equal(r.code, 0, r.out);
  r = await healthcheck({ ...url, PBFT_ID: '1' });
  assert.equal(r.code, 1);
  assert.match(r.out, /answers as replica 2, not 1/);

  answer = { code: 503, body: 'starting\n' };
  r = await healthcheck(url);
  assert.equal(r.code, 1);
  assert.match(r.out, /HTTP 503/);
  answer = { code: 200, body: '<html>' };
  assert.equal((await healthcheck(url)).code, 1);
  answer = { code: 200, body: JSON.stringify({ hello: 'world' }) };
  r = await healthcheck(url);
  assert.equal(r.code, 1);
  assert.match(r.out, /not a replica's status/);
  answer = 'hang';
  r = await healthcheck(url);
  assert.equal(r.code, 1);
  assert.match(r.out, /no answer within/);
  server.closeAllConnections();
  const closed = new Promise((resolve) => server.close(resolve));
  server.closeAllConnections();
  await closed;
  r = await healthcheck(url);
  assert.equal(r.code, 1);
  assert.match(r.out, /ECONNREFUSED/);
});
