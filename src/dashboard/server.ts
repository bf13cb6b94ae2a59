/**
 * The dashboard process: polls the cluster about once a `intervalMs` (every replica's /status
 * through pollCluster, as `pbft status` does, and the request-latency histogram of each reachable
 * replica's /metrics), feeds each round to the DashboardModel, and serves
 *
 *   GET /                the page (page.ts): self-contained, no external resources
 *   GET /events          server-sent events: the latest snapshot at once, then one per round
 *   GET /snapshot.json   the latest snapshot
 *
 * Rounds never overlap: the next starts `intervalMs` after the previous one started, or as soon as
 * it ended when it took longer (a replica that does not answer costs its timeout). At most
 * EVENT_CLIENTS_MAX event streams at once; a stream whose reader falls behind by more than
 * EVENT_STREAM_BACKLOG_BYTES_MAX is closed (the browser reconnects and gets the latest snapshot).
 * When it listens on a loopback address it answers only requests whose Host is a loopback name, so
 * that a web page elsewhere cannot read it through DNS rebinding.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClusterConfig } from '../core/cluster.ts';
import { httpBaseOf } from '../cli/common.ts';
import { pollCluster, type ClusterPoll } from '../cli/status.ts';
import { DashboardModel, metricsHistograms, type MetricsHistograms, type RoundInput, type Snapshot } from './model.ts';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './page.ts';

export const INTERVAL_MS_DEFAULT = 1_000;
/** A replica's /status or /metrics that takes longer than this counts as no answer in a round. */
export const POLL_TIMEOUT_MS_DEFAULT = 2_000;
export const EVENT_CLIENTS_MAX = 32;
export const EVENT_STREAM_BACKLOG_BYTES_MAX = 4 * 1024 * 1024;

export interface DashboardServerOptions {
  cluster: ClusterConfig;
  host: string;
  /** 0: any free port (see `url` after start). */
  port: number;
  intervalMs?: number;
  pollTimeoutMs?: number;
  historyMs?: number;
}

export interface DashboardServerDeps {
  /** One round over the cluster; default: pollCluster and each reachable replica's /metrics. */
  poll?: (cluster: ClusterConfig, timeoutMs: number) => Promise<RoundInput>;
  /** Wall clock, ms since the Unix epoch; default Date.now. */
  clockMs?: () => number;
  /** A round that failed as a whole (it should not: unreachable replicas are part of a round). */
  onError?: (err: unknown) => void;
}

export class DashboardError extends Error {
  override readonly name = 'DashboardError';
  constructor(
    readonly code: 'ADDRESS_IN_USE' | 'LISTEN_FAILED',
    message: string,
  ) {
    super(message);
  }
}

async function fetchMetrics(url: string, timeoutMs: number): Promise<MetricsHistograms | undefined> {
  try {
    const res = await fetch(`${httpBaseOf(url)}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    return metricsHistograms(await res.text());
  } catch {
    return undefined;
  }
}

/** The default round: /status of every replica (pollCluster), then /metrics of those that answered. */
export async function pollRound(cluster: ClusterConfig, timeoutMs: number): Promise<RoundInput> {
  const poll: ClusterPoll = await pollCluster(cluster, timeoutMs);
  const replicas = await Promise.all(
    poll.reports.map(async (r) => {
      if (!r.reachable) return { replica: r.replica, url: r.url, reachable: false, error: r.error };
      const metrics = await fetchMetrics(r.url, timeoutMs);
      return { replica: r.replica, url: r.url, reachable: true, status: r as Record<string, unknown>, ...(metrics !== undefined ? { metrics } : {}) };
    }),
  );
  return { replicas, epoch: poll.epoch, members: poll.members, n: poll.n, f: poll.f, quorum: poll.quorum, up: poll.up };
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host) || host.endsWith('.localhost');
}

/** The host name of a Host header (without the port; IPv6 with its brackets). */
function hostName(header: string | undefined): string {
  if (header === undefined) return '';
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(header.trim().toLowerCase());
  return m?.[1] ?? '';
}

export class DashboardServer {
  readonly model: DashboardModel;
  private readonly server: http.Server;
  private readonly clients = new Set<ServerResponse>();
  private readonly intervalMs: number;
  private readonly pollTimeoutMs: number;
  private readonly poll: (cluster: ClusterConfig, timeoutMs: number) => Promise<RoundInput>;
  private readonly clockMs: () => number;
  private latest: Snapshot | undefined;
  private latestJson: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private roundDone: Promise<void> = Promise.resolve();
  private address: AddressInfo | undefined;
  /** Rounds completed. */
  rounds = 0;

  constructor(
    private readonly options: DashboardServerOptions,
    private readonly deps: DashboardServerDeps = {},
  ) {
    this.intervalMs = options.intervalMs ?? INTERVAL_MS_DEFAULT;
    this.pollTimeoutMs = options.pollTimeoutMs ?? POLL_TIMEOUT_MS_DEFAULT;
    this.poll = deps.poll ?? pollRound;
    this.clockMs = deps.clockMs ?? Date.now;
    this.model = new DashboardModel(options.cluster.clusterId, { intervalMs: this.intervalMs, ...(options.historyMs !== undefined ? { historyMs: options.historyMs } : {}) });
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  /** The page's address, once listening (an IPv6 host in brackets). */
  get url(): string {
    if (this.address === undefined) throw new Error('the dashboard is not listening');
    const host = this.address.family === 'IPv6' ? `[${this.address.address}]` : this.address.address;
    return `http://${host}:${this.address.port}/`;
  }

  /** Listens, then runs the first round before resolving (the page has something to show at once). */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const where = `${this.options.host}:${this.options.port}`;
        if (err.code === 'EADDRINUSE') reject(new DashboardError('ADDRESS_IN_USE', `cannot listen on ${where}: the address is in use (choose another --port, or 0 for any free one)`));
        else reject(new DashboardError('LISTEN_FAILED', `cannot listen on ${where}: ${err.code ?? err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.address = this.server.address() as AddressInfo;
    this.running = true;
    await this.runRound();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.roundDone;
    for (const res of this.clients) res.end();
    this.clients.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The latest snapshot (undefined before the first round). */
  snapshot(): Snapshot | undefined {
    return this.latest;
  }

  private runRound(): Promise<void> {
    const startedAt = this.clockMs();
    const done = (async () => {
      try {
        const round = await this.poll(this.options.cluster, this.pollTimeoutMs);
        const at = this.clockMs();
        this.model.ingest(round, at);
        this.latest = this.model.snapshot(at);
        this.latestJson = JSON.stringify(this.latest);
        this.rounds++;
        this.broadcast(this.latestJson);
      } catch (err) {
        this.deps.onError?.(err);
      }
    })();
    this.roundDone = done.then(() => {
      if (!this.running) return;
      const wait = Math.max(0, this.intervalMs - (this.clockMs() - startedAt));
      this.timer = setTimeout(() => void this.runRound(), wait);
    });
    return this.roundDone;
  }

  private broadcast(json: string): void {
    const frame = `data: ${json}\n\n`;
    for (const res of this.clients) {
      if (res.writableLength > EVENT_STREAM_BACKLOG_BYTES_MAX) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(frame);
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const send = (code: number, type: string, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
    if (isLoopback(this.options.host) && !isLoopback(hostName(req.headers.host))) {
      return send(403, 'text/plain; charset=utf-8', 'this dashboard answers only requests addressed to a loopback name (Host: localhost or 127.0.0.1)\n');
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/' || path === '/index.html') {
      return send(200, 'text/html; charset=utf-8', DASHBOARD_HTML, { 'content-security-policy': DASHBOARD_CSP, 'x-frame-options': 'DENY' });
    }
    if (path === '/snapshot.json') {
      if (this.latestJson === undefined) return send(503, 'text/plain; charset=utf-8', 'no snapshot yet\n');
      return send(200, 'application/json', this.latestJson + '\n');
    }
    if (path === '/events') {
      if (this.clients.size >= EVENT_CLIENTS_MAX) return send(503, 'text/plain; charset=utf-8', `too many event streams (at most ${EVENT_CLIENTS_MAX})\n`, { 'retry-after': '5' });
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      if (req.method === 'HEAD') return void res.end();
      res.write('retry: 2000\n\n');
      if (this.latestJson !== undefined) res.write(`data: ${this.latestJson}\n\n`);
      this.clients.add(res);
      req.socket.setTimeout(0);
      const drop = (): void => void this.clients.delete(res);
      res.once('close', drop);
      res.once('error', drop);
      return;
    }
    return send(404, 'text/plain; charset=utf-8', 'not found; try /, /events or /snapshot.json\n');
  }
}
