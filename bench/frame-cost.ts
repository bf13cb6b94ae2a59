/**
 * What one WebSocket frame costs on this machine: the CPU of sending it and of receiving it, over
 * loopback TCP between two processes, with the `ws` options the replicas and the SDK use (binary
 * frames, no compression). Every request crosses several such frames (client -> primary, the
 * replicas' protocol messages amortized over a batch, n replies), so this is the second floor
 * beside the signatures: bench/bench.ts multiplies it by the frames per request it counts.
 *
 * Two patterns, each for `seconds` of wall time:
 *   one in flight   one connection; a frame goes out only when the previous one came back, so every
 *                   frame finds its receiver asleep in epoll and wakes it (the 1-client pattern)
 *   64 in flight    64 connections with one frame each in flight (the 64-client pattern: a process
 *                   often finds several frames ready when it wakes)
 *
 * A round trip is two frames (one each way); both processes' user + system CPU over the window is
 * divided by the frames: the figure is send + receive of one frame, both ends together, including
 * node's stream machinery, `ws` framing and the kernel's TCP work done in the processes' context.
 *
 * The same two patterns then run over plain TCP streams (net.Socket, no WebSocket: a 4-byte length
 * prefix per frame, parsed in a few lines): what any transport built on Node's streams pays per
 * frame on this machine, so the difference is all that replacing `ws` with a framing of our own
 * could save.
 *
 * Run alone: node --import tsx bench/frame-cost.ts [seconds per pattern, default 2] [payload bytes, default 320]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';

/** One transport's figures: the two patterns. */
export interface PerFrame {
  /** CPU microseconds per frame (sender + receiver), one frame in flight. */
  oneInFlightUs: number;
  /** The same with `connectionsMany` connections, one frame each in flight. */
  manyInFlightUs: number;
  /** Round trips measured per pattern. */
  roundTrips: { one: number; many: number };
}

/** WebSocket frames (the top-level figures), and the same patterns over plain TCP streams. */
export interface FrameCost extends PerFrame {
  payloadBytes: number;
  connectionsMany: number;
  /** The same two patterns over plain TCP streams with a 4-byte length prefix per frame (no WebSocket). */
  plain: PerFrame;
}

/** One connection of either kind, as the patterns use it. */
interface Conn {
  send(payload: Buffer): void;
  /** Replaces the frame handler. */
  onFrame(handler: () => void): void;
  close(): void;
}

/** Calls `onFrame` with each length-prefixed frame that arrives on `socket`. */
function readFrames(socket: Socket, onFrame: (frame: Buffer) => void): void {
  let pending: Buffer | undefined;
  socket.on('data', (chunk: Buffer) => {
    let buf = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    pending = undefined;
    while (buf.length >= 4) {
      const end = 4 + buf.readUInt32BE(0);
      if (buf.length < end) break;
      onFrame(buf.subarray(4, end));
      buf = buf.subarray(end);
    }
    if (buf.length > 0) pending = buf;
  });
}

function writeFrame(socket: Socket, payload: Buffer): void {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(payload.length, 0);
  socket.cork();
  socket.write(header);
  socket.write(payload);
  socket.uncork();
}

const ECHO_ARG = '--frame-cost-echo';
const WS_OPTIONS = { perMessageDeflate: false, maxPayload: 1 << 20 } as const;

/** The echo peer: a ws server on 127.0.0.1 answering every frame with a frame of the same size. */
function runEcho(): void {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...WS_OPTIONS });
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => ws.send(data, { binary: true }));
  });
  const plain = createServer((socket) => {
    socket.setNoDelay(true);
    readFrames(socket, (frame) => writeFrame(socket, frame));
  });
  let listening = 0;
  const ready = (): void => {
    if (++listening < 2) return;
    const address = wss.address();
    const plainAddress = plain.address();
    process.send!({
      type: 'port',
      port: typeof address === 'object' && address !== null ? address.port : 0,
      plainPort: typeof plainAddress === 'object' && plainAddress !== null ? plainAddress.port : 0,
    });
  };
  wss.on('listening', ready);
  plain.listen(0, '127.0.0.1', ready);
  process.on('message', (m: { type: string }) => {
    if (m.type === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ type: 'cpu', us: u.user + u.system });
    } else if (m.type === 'exit') {
      wss.close();
      plain.close();
      process.exit(0);
    }
  });
}

function ask<T>(child: ChildProcess, message: object, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string } & T): void => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m);
    };
    const onExit = (code: number | null): void => reject(new Error(`frame-cost: echo peer exited (${code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    if (Object.keys(message).length > 0) child.send(message);
  });
}

function openWs(url: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, WS_OPTIONS);
    ws.once('open', () =>
      resolve({
        send: (payload) => ws.send(payload, { binary: true }),
        onFrame: (handler) => {
          ws.removeAllListeners('message');
          ws.on('message', handler);
        },
        close: () => ws.terminate(),
      }),
    );
    ws.once('error', reject);
  });
}

function openPlain(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let handler: () => void = () => undefined;
    socket.once('connect', () => {
      socket.setNoDelay(true);
      readFrames(socket, () => handler());
      resolve({ send: (payload) => writeFrame(socket, payload), onFrame: (h) => void (handler = h), close: () => socket.destroy() });
    });
    socket.once('error', reject);
  });
}

/** Keeps one frame in flight on each connection for `seconds`; returns round trips and the CPU of both ends. */
async function pattern(child: ChildProcess, sockets: Conn[], payload: Buffer, seconds: number): Promise<{ roundTrips: number; cpuUs: number }> {
  let roundTrips = 0;
  let measuring = false;
  let stopping = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  for (const conn of sockets) {
    conn.onFrame(() => {
      inFlight--;
      if (measuring) roundTrips++;
      if (!stopping) {
        inFlight++;
        conn.send(payload);
      } else if (inFlight === 0) drained?.();
    });
  }
  for (const conn of sockets) {
    inFlight++;
    conn.send(payload);
  }
  await new Promise((r) => setTimeout(r, 300)); // warm-up
  const childStart = (await ask<{ us: number }>(child, { type: 'cpu' }, 'cpu')).us;
  const own0 = process.cpuUsage();
  measuring = true;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const own = process.cpuUsage(own0);
  const childEnd = (await ask<{ us: number }>(child, { type: 'cpu' }, 'cpu')).us;
  stopping = true;
  if (inFlight > 0) await new Promise<void>((r) => (drained = r));
  // The two cpu questions cost the child a little; negligible against thousands of frames.
  return { roundTrips, cpuUs: own.user + own.system + (childEnd - childStart) };
}

export async function measureFrameCost(options: { seconds?: number; payloadBytes?: number; connections?: number } = {}): Promise<FrameCost> {
  const seconds = options.seconds ?? 2;
  const payloadBytes = options.payloadBytes ?? 320;
  const connections = options.connections ?? 64;
  if (!(seconds > 0) || !Number.isInteger(payloadBytes) || payloadBytes < 1 || !Number.isInteger(connections) || connections < 1) {
    throw new RangeError('frame-cost: seconds > 0, payload bytes and connections positive integers');
  }
  const child = fork(fileURLToPath(import.meta.url), [ECHO_ARG], { execArgv: process.execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const sockets: Conn[] = [];
  try {
    const { port, plainPort } = await ask<{ port: number; plainPort: number }>(child, {}, 'port');
    const payload = Buffer.alloc(payloadBytes, 7);
    /** Both patterns over connections made by `open`: one, then `connections`. */
    const both = async (open: () => Promise<Conn>): Promise<{ one: { roundTrips: number; cpuUs: number }; many: { roundTrips: number; cpuUs: number } }> => {
      const mine: Conn[] = [];
      const add = async (): Promise<void> => {
        const conn = await open();
        mine.push(conn);
        sockets.push(conn);
      };
      await add();
      const one = await pattern(child, mine, payload, seconds);
      while (mine.length < connections) await add();
      const many = await pattern(child, mine, payload, seconds);
      if (one.roundTrips === 0 || many.roundTrips === 0) throw new Error('frame-cost: no round trip completed');
      for (const conn of mine) conn.onFrame(() => undefined);
      return { one, many };
    };
    /** CPU per frame of each pattern (a round trip is two frames). */
    const perFrame = (p: Awaited<ReturnType<typeof both>>): PerFrame => ({
      oneInFlightUs: p.one.cpuUs / (2 * p.one.roundTrips),
      manyInFlightUs: p.many.cpuUs / (2 * p.many.roundTrips),
      roundTrips: { one: p.one.roundTrips, many: p.many.roundTrips },
    });
    const ws = perFrame(await both(() => openWs(`ws://127.0.0.1:${port}`)));
    const plain = perFrame(await both(() => openPlain(plainPort)));
    return { payloadBytes, ...ws, connectionsMany: connections, plain };
  } finally {
    for (const conn of sockets) conn.close();
    if (child.connected) child.send({ type: 'exit' });
    await new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) return r();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      child.once('exit', () => {
        clearTimeout(timer);
        r();
      });
    });
  }
}

if (process.argv.includes(ECHO_ARG)) {
  runEcho();
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const secondsArg = Number(process.argv[2] ?? 2);
  const bytesArg = Number(process.argv[3] ?? 320);
  if (!(secondsArg > 0) || !Number.isInteger(bytesArg) || bytesArg < 1) {
    console.error('usage: node --import tsx bench/frame-cost.ts [seconds per pattern > 0] [payload bytes >= 1]');
    process.exit(2);
  }
  const cost = await measureFrameCost({ seconds: secondsArg, payloadBytes: bytesArg });
  console.log(JSON.stringify(cost, null, 2));
}
