/**
 * Headless Chromium driven over the DevTools protocol (CDP) with the `ws` package: launch with
 * --remote-debugging-port=0 (Chromium picks a free port and prints the browser's WebSocket URL on
 * stderr, so no port is chosen here), open a page, evaluate expressions in it, size its viewport,
 * take a PNG screenshot of it, close.
 *
 * The binary is $CHROMIUM, else `chromium` (Debian's package; .ci/run installs it where missing).
 * As root (CI containers) Chromium needs --no-sandbox.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const CHROMIUM = process.env.CHROMIUM ?? 'chromium';

interface CdpResponse {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  sessionId?: string;
  result?: Record<string, unknown>;
  error?: { message: string };
}

export class Chromium {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void; method: string }>();
  /** console.* output and uncaught exceptions of the pages, for failure messages. */
  readonly pageLog: string[] = [];
  private exited = false;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly ws: WebSocket,
    private readonly profileDir: string,
    readonly stderr: string[],
  ) {
    ws.on('message', (data) => this.onMessage(JSON.parse(String(data)) as CdpResponse));
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error(`CDP connection closed during ${p.method}`));
      this.pending.clear();
    });
    proc.once('exit', () => {
      this.exited = true;
    });
  }

  static async launch(timeoutMs = 60_000): Promise<Chromium> {
    const profileDir = mkdtempSync(join(tmpdir(), 'pbft-chromium-'));
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--disable-background-networking',
      '--remote-debugging-address=127.0.0.1',
      '--remote-debugging-port=0',
      `--user-data-dir=${profileDir}`,
      'about:blank',
    ];
    // Its own process group, so that close() can end the renderer and helper processes with it.
    const proc = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const stderr: string[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools URL within ${timeoutMs} ms:\n${stderr.join('')}`)), timeoutMs);
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${CHROMIUM} (${err.message}); install Debian's chromium (apt-get install -y chromium) or set CHROMIUM to its path`));
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${CHROMIUM} exited (${code ?? signal}) before it listened:\n${stderr.join('')}`));
      });
      proc.stderr!.on('data', (chunk: Buffer) => {
        stderr.push(chunk.toString('utf8'));
        if (stderr.length > 200) stderr.splice(0, stderr.length - 200);
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr.join(''));
        if (m !== null) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Chromium(proc, ws, profileDir, stderr);
  }

  private onMessage(msg: CdpResponse): void {
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      if (msg.error !== undefined) p.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p.resolve(msg.result ?? {});
      return;
    }
    if (msg.method === 'Runtime.consoleAPICalled') {
      const args = (msg.params?.args as { value?: unknown; description?: string }[] | undefined) ?? [];
      this.pageLog.push(`console.${String(msg.params?.type)}: ${args.map((a) => (a.value !== undefined ? JSON.stringify(a.value) : a.description)).join(' ')}`);
    } else if (msg.method === 'Runtime.exceptionThrown') {
      const details = msg.params?.exceptionDetails as { text?: string; exception?: { description?: string } } | undefined;
      this.pageLog.push(`exception: ${details?.exception?.description ?? details?.text ?? '?'}`);
    }
    if (this.pageLog.length > 500) this.pageLog.splice(0, this.pageLog.length - 500);
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId !== undefined ? { sessionId } : {}) }));
    });
  }

  /** Opens a page at `url` in a new tab and returns it once its document has loaded. */
  async open(url: string): Promise<Page> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const page = new Page(this, sessionId);
    await this.send('Runtime.enable', {}, sessionId);
    await this.send('Page.enable', {}, sessionId);
    await this.send('Page.navigate', { url }, sessionId);
    return page;
  }

  /** Closes the browser (Browser.close, then SIGKILL to its process group if it lingers). */
  async close(): Promise<void> {
    if (!this.exited) {
      const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
      await Promise.race([this.send('Browser.close').catch(() => undefined), new Promise((r) => setTimeout(r, 5_000))]);
      const timer = setTimeout(() => this.killGroup(), 5_000);
      await exited;
      clearTimeout(timer);
    }
    this.killGroup(); // helper processes that outlived the browser process
    this.ws.terminate();
    rmSync(this.profileDir, { recursive: true, force: true });
  }

  private killGroup(): void {
    try {
      if (this.proc.pid !== undefined) process.kill(-this.proc.pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
}

export class Page {
  constructor(
    private readonly browser: Chromium,
    readonly sessionId: string,
  ) {}

  /** Evaluates `expression` in the page; awaits a returned promise and returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const res = (await this.browser.send(
      'Runtime.evaluate',
      { expression, awaitPromise: true, returnByValue: true },
      this.sessionId,
    )) as { result: { value?: unknown }; exceptionDetails?: { text?: string; exception?: { description?: string } } };
    if (res.exceptionDetails !== undefined) {
      throw new Error(`in the page: ${res.exceptionDetails.exception?.description ?? res.exceptionDetails.text ?? 'exception'}\npage log:\n${this.browser.pageLog.join('\n')}`);
    }
    return res.result.value as T;
  }

  /** Sets the page's viewport (CSS pixels) and device scale factor (Emulation.setDeviceMetricsOverride). */
  async setViewport(width: number, height: number, deviceScaleFactor = 1): Promise<void> {
    await this.browser.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor, mobile: false }, this.sessionId);
  }

  /**
   * A PNG of the page (Page.captureScreenshot): the viewport, or with `fullPage` the whole document,
   * below the fold included.
   */
  async screenshot(options: { fullPage?: boolean } = {}): Promise<Buffer> {
    const params: Record<string, unknown> = { format: 'png' };
    if (options.fullPage === true) {
      const metrics = (await this.browser.send('Page.getLayoutMetrics', {}, this.sessionId)) as {
        cssContentSize?: { width: number; height: number };
        contentSize: { width: number; height: number };
      };
      const size = metrics.cssContentSize ?? metrics.contentSize;
      params.clip = { x: 0, y: 0, width: Math.ceil(size.width), height: Math.ceil(size.height), scale: 1 };
      params.captureBeyondViewport = true;
    }
    const { data } = (await this.browser.send('Page.captureScreenshot', params, this.sessionId)) as { data: string };
    return Buffer.from(data, 'base64');
  }

  /** Resolves once `expression` evaluates truthy in the page (polled; bounded by timeoutMs). */
  async waitFor(expression: string, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (await this.evaluate<boolean>(`Boolean(${expression})`)) return;
      } catch {
        // navigating: the execution context may not exist yet
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\npage log:\n${this.browser.pageLog.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
