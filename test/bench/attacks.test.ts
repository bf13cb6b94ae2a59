/**
 * Smoke run of the bench's attacks part: one attack scenario (a byzantine replica flooding signed
 * VIEW-CHANGEs and CHECKPOINTs with its real key) end to end at a tiny duration, against a fault-free
 * run of the same size. It checks that the scenario reports a throughput, its fraction of
 * fault-free with [MET] or [MISSED], RSS, data and log figures, and that the attacker sent frames.
 * No assertion on the figures themselves: a run this short on a busy machine means nothing.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import test from 'node:test';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'bench.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const num = (cell: string | undefined): number => Number((cell ?? '').replace(/,|%/g, ''));

test('npm run bench -- --only attacks: one scenario reports its throughput as a fraction of fault-free, with RSS, data and log', { timeout: 120_000 }, async () => {
  const args = ['--only', 'attacks', '--attacks', 'vc-flood', '--attack-duration', '1', '--warmup', '0.3', '--clients', '4', '--client-procs', '1'];
  const { code, stdout, stderr } = await run(args);
  assert.equal(code, 0, `bench exited with ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  assert.match(stdout, /fault-free: [\d,.]+ req\/s/);
  const row = stdout.split('\n').find((l) => l.trim().startsWith('vc-flood '));
  assert.ok(row !== undefined, `a row for vc-flood in:\n${stdout}`);
  const cells = row.trim().split(/\s{2,}/);
  const [, perSecond, fraction, verdict, , cpu, rss, disk, log, , attacker] = cells;
  assert.ok(num(cpu) > 0, `CPU ms per request (${cpu})`);
  assert.ok(num(perSecond) > 0, `requests completed under attack (${perSecond})`);
  assert.ok(Number.isFinite(num(fraction)) && num(fraction) > 0, `a fraction (${fraction})`);
  assert.match(verdict!, /^\[(MET|MISSED)\]$/);
  // Three running replicas (the fourth is the attacker's identity): three figures each.
  assert.equal(rss!.match(/\d+->\d+ \(\d+\)/g)?.length, 3, `RSS before->after (max) per replica: ${rss}`);
  assert.equal(disk!.match(/[\d.]+->[\d.]+/g)?.length, 3, `data before->after per replica: ${disk}`);
  assert.equal(log!.split(' ').length, 3, `log KiB per replica: ${log}`);
  assert.ok(num(attacker!.split(' ')[0]) > 0, `the attacker sent frames: ${attacker}`);
  assert.match(stdout, /\[(MET|MISSED)\] attack vc-flood: throughput >= 50% of fault-free/);
});

test('npm run bench -- --help names the attacks part and every scenario', async () => {
  const { code, stdout } = await run(['--help']);
  assert.equal(code, 0);
  for (const s of ['--attacks', '--attack-duration', '--attack-rate', 'silent-replica', 'slow-primary', 'vc-flood', 'future-votes', 'state-requests', 'garbage', 'batch-flood', 'bad-sigs', 'deep-cbor', 'same-timestamp', 'slowloris']) {
    assert.ok(stdout.includes(s), `--help mentions ${s}`);
  }
});
