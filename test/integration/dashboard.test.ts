/**
 * `pbft dashboard` end to end: four real replica processes (RocksDB) under load from SDK clients,
 * the dashboard as a real process (`bin/pbft.mjs dashboard --port 0`: it binds a free port itself
 * and prints its URL, read from its stdout), and its page in headless Chromium (chromium.ts, CDP).
 *
 * The page shows the four replicas with replica 0 the primary of view 0; the primary's process is
 * SIGKILLed (and checked gone); the page then shows, without a reload, the old primary unreachable,
 * a new primary in a view above 0, and the view change in its history. A full-page screenshot is
 * saved to test-artifacts/dashboard.png (the README's docs/dashboard.png is one of these). Every
 * wait is for a condition, bounded generously (the machine has 2 cores); nothing asserts on time.
 * The dashboard then stops on SIGTERM with exit status 0. Every process started here (replicas,
 * dashboard, Chromium) is stopped in `after`, also when a step fails.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PbftClient } from '../../src/client/client.ts';
import { Chromium, type Page } from './chromium.ts';
import { alive, LAUNCHER, REPO_ROOT, sleep, TestCluster, track, waitFor } from './helpers.ts';
import { testLogLevel } from './workload.ts';

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'dashboard.png');
/** Bounds of the waits (guards, not expectations: a view change takes about a second here). */
const PAGE_WAIT_MS = 60_000;
const VIEW_CHANGE_WAIT_MS = 120_000;
/** Throughput points the page shows before the kill, and more after the view change (for the screenshot). */
const PLOT_POINTS_BEFORE = 20;
const PLOT_POINTS_AFTER = 16;

/** SDK clients putting keys in a loop until stopped; failures are counted, not fatal (the primary dies). */
class Load {
  completed = 0;
  readonly errors: string[] = [];
  private stopping = false;
  private readonly done: Promise<void>;

  constructor(clients: PbftClient[]) {
    this.done = Promise.all(
      clients.map(async (c, i) => {
        for (let n = 0; !this.stopping; n++) {
          try {
            await c.put(`dash-${i}-${n % 64}`, String(n));
            this.completed++;
          } catch (err) {
            if (this.stopping) return;
            this.errors.push(err instanceof Error ? err.message : String(err));
            if (this.errors.length > 100) this.errors.shift();
            await sleep(100);
          }
        }
      }),
    ).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.done;
  }
}

interface DashboardProc {
  proc: ChildProcess;
  url: string;
  output: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Every dashboard process started here (stopped in `after`, even one that never printed its URL). */
const dashboards: Array<{ proc: ChildProcess; exit: Promise<unknown> }> = [];

/** Starts `pbft dashboard --port 0` and reads the URL it prints once it listens. */
async function startDashboard(keysDir: string): Promise<DashboardProc> {
  const proc = track(
    spawn(process.execPath, [LAUNCHER, 'dashboard', '--keys', keysDir, '--port', '0', '--interval', '500'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const output: string[] = [];
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  dashboards.push({ proc, exit });
  let exited = false;
  void exit.then(() => (exited = true));
  let url: string | undefined;
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      output.push(line);
      if (output.length > 200) output.shift();
      const m = /^pbft dashboard: (http:\/\/\S+)/.exec(line);
      if (m !== null) url = m[1];
    }
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  await waitFor(() => {
    if (exited) throw new Error(`pbft dashboard exited before it printed its URL:\n${output.join('\n')}`);
    return url !== undefined;
  }, 'pbft dashboard to print its URL');
  return { proc, url: url!, output, exit };
}

let tc: TestCluster | undefined;
let dashboard: DashboardProc | undefined;
let browser: Chromium | undefined;
let page: Page;
let load: Load | undefined;

before(async () => {
  tc = await TestCluster.create({ name: 'dashboard', clients: 2, node: { logLevel: testLogLevel() } });
  await tc.startAll();
  const clients = await Promise.all([0, 1].map((c) => tc!.client(c, { timeoutMs: 30_000 })));
  load = new Load(clients);
  dashboard = await startDashboard(tc.keysDir);
  browser = await Chromium.launch();
  page = await browser.open(dashboard.url);
  await page.setViewport(1400, 1000);
});

after(async () => {
  await load?.stop().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  for (const d of dashboards) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) continue;
    d.proc.kill('SIGKILL');
    await d.exit;
  }
  await tc?.destroy();
});

/** What the page shows, read from its DOM (for waits and failure messages). */
interface Shown {
  cards: Array<{ id: string; reachable: string; role: string; view: string; state: string; text: string }>;
  clusterView: string | null;
  clusterState: string | null;
  throughput: string | null;
  /** Points of the cluster's throughput plot. */
  throughputPoints: number;
  connection: string | null;
  viewChangeRows: Array<{ view: string; text: string }>;
}

const SHOWN = `(() => {
  const text = (id) => { const el = document.getElementById(id); return el === null ? null : el.innerText; };
  return {
    cards: [...document.querySelectorAll('#replicas [data-replica]')].map((c) => ({
      id: c.dataset.replica, reachable: c.dataset.reachable, role: c.dataset.role, view: c.dataset.view, state: c.dataset.state, text: c.innerText,
    })),
    clusterView: document.getElementById('cluster-view')?.dataset.view ?? null,
    clusterState: text('cluster-state'),
    throughput: text('cluster-throughput'),
    throughputPoints: Number(document.getElementById('plot-throughput')?.getAttribute('data-points') ?? 0),
    connection: text('conn'),
    viewChangeRows: [...document.querySelectorAll('#vc-history tbody tr[data-view]')].map((r) => ({ view: r.dataset.view, text: r.innerText })),
  };
})()`;

async function shown(): Promise<Shown> {
  return page.evaluate<Shown>(SHOWN);
}

/** Waits until the page shows what `ok` wants; on timeout, says what it showed and what the dashboard printed. */
async function waitForPage(what: string, ok: (s: Shown) => boolean, timeoutMs: number): Promise<Shown> {
  let last: Shown | undefined;
  try {
    return await waitFor(async () => {
      last = await shown().catch(() => undefined);
      return last !== undefined && ok(last) ? last : undefined;
    }, what, timeoutMs);
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nthe page showed: ${JSON.stringify(last, null, 1)}\npage log:\n${browser?.pageLog.join('\n')}\ndashboard output:\n${dashboard?.output.join('\n')}`,
    );
  }
}

/** The number a text starts with ('50\nreq/s': 50); NaN for none. */
const num = (s: string | null | undefined): number => (s === null || s === undefined ? NaN : Number.parseFloat(s));

test('the page shows the cluster live; the primary is SIGKILLed and the page shows the view change; screenshot saved', async () => {
  // Four replicas in one view, its primary (replica 0 in view 0, unless a loaded machine already made
  // the replicas change views: then the view's own primary), the load visible as throughput.
  const before = await waitForPage(
    'the page to show four reachable replicas in one view with its primary, and throughput',
    (s) =>
      s.cards.length === 4 &&
      s.cards.every((c) => c.reachable === 'true' && c.view === s.clusterView && c.state === 'normal') &&
      s.cards.find((c) => c.id === String(num(s.clusterView) % 4))?.role === 'primary' &&
      s.cards.filter((c) => c.role === 'backup').length === 3 &&
      num(s.throughput) > 0 &&
      // Some history before the kill (the plots then show before and after; rounds are 0.5 s apart).
      s.throughputPoints >= PLOT_POINTS_BEFORE,
    PAGE_WAIT_MS,
  );
  assert.equal(before.connection, 'live');
  assert.equal(before.clusterState, 'normal');
  const viewBefore = num(before.clusterView);
  const victim = viewBefore % 4;
  assert.match(before.cards[victim]!.text, new RegExp(`replica ${victim}\\s+primary\\s+normal`));
  if (viewBefore === 0) assert.deepEqual(before.viewChangeRows, [], 'no view change yet');

  // SIGKILL the primary's process; it is gone.
  const pid = tc!.procs[victim]!.proc.pid!;
  assert.ok(alive(pid));
  const killed = await tc!.stop(victim, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(alive(pid), false, `replica ${victim} (pid ${pid}) is gone`);
  const completedAtKill = load!.completed;

  // The page follows: the old primary unreachable, a new primary in a later view, the change in the history.
  const afterKill = await waitForPage(
    `the page to show the view change: replica ${victim} unreachable, a new primary in a view above ${viewBefore}, a history entry`,
    (s) => {
      const dead = s.cards.find((c) => c.id === String(victim));
      const primary = s.cards.find((c) => c.role === 'primary' && c.reachable === 'true');
      return (
        dead?.reachable === 'false' &&
        dead.state === 'unreachable' &&
        primary !== undefined &&
        primary.id !== String(victim) &&
        num(primary.view) > viewBefore &&
        primary.state === 'normal' &&
        num(s.clusterView) > viewBefore &&
        s.clusterState === 'normal' &&
        s.viewChangeRows.some((r) => num(r.view) > viewBefore)
      );
    },
    VIEW_CHANGE_WAIT_MS,
  );
  const view = num(afterKill.clusterView);
  const dead = afterKill.cards.find((c) => c.id === String(victim))!;
  assert.match(dead.text, /unreachable/);
  const primary = afterKill.cards.find((c) => c.role === 'primary')!;
  assert.equal(num(primary.view), view);
  assert.equal(Number(primary.id), view % 4, 'the primary of view v is replica v mod n');
  const row = afterKill.viewChangeRows.find((r) => num(r.view) === view)!;
  assert.ok(row !== undefined, `a history row for view ${view}: ${JSON.stringify(afterKill.viewChangeRows)}`);
  assert.match(row.text, /suspect/, 'the row says why: replicas suspected the primary');
  assert.equal(afterKill.connection, 'live', 'the page kept its event stream (no reload)');

  // The new view serves the load, and the page shows it (for a screenshot with the whole story).
  await waitFor(() => load!.completed > completedAtKill + 20, 'the load to continue in the new view', VIEW_CHANGE_WAIT_MS);
  const pointsAtChange = afterKill.throughputPoints;
  await waitForPage(
    'throughput in the new view',
    (s) => num(s.throughput) > 0 && s.clusterState === 'normal' && s.throughputPoints >= pointsAtChange + PLOT_POINTS_AFTER,
    PAGE_WAIT_MS,
  );

  const png = await page.screenshot({ fullPage: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(SCREENSHOT, png);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  assert.ok(width >= 1000 && height >= 800, `a full page, ${width} x ${height}`);
  assert.ok(png.length > 30_000, `a non-trivial image (${png.length} bytes)`);
  assert.deepEqual(browser!.pageLog.filter((l) => l.startsWith('exception')), [], 'no exception in the page');
});

test('pbft dashboard stops on SIGTERM with exit status 0', async () => {
  const d = dashboard!;
  d.proc.kill('SIGTERM');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([d.exit, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), PAGE_WAIT_MS)))]);
  clearTimeout(timer);
  assert.ok(result !== undefined, `pbft dashboard did not exit within ${PAGE_WAIT_MS} ms of SIGTERM:\n${d.output.join('\n')}`);
  assert.deepEqual(result, { code: 0, signal: null }, d.output.join('\n'));
  assert.ok(d.output.some((l) => /SIGTERM received; stopping/.test(l)));
});
