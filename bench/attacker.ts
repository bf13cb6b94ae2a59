/**
 * The byzantine side of the bench's attack scenarios (bench/bench.ts, part `attacks`): one process
 * that speaks the real wire format with real keys from the bench keyring.
 *
 *   as a replica (its own key, replica-<id>.key; the real replica with that id is not running):
 *     vc-flood        signed VIEW-CHANGEs for ever higher views and signed CHECKPOINTs with made-up digests
 *     future-votes    signed PRE-PREPAREs, PREPAREs and COMMITs for far-future views and sequence numbers
 *     state-requests  state-transfer requests (meta, every leaf group, every partition) and log fetches
 *     garbage         unsigned and invalid frames: random bytes, truncated CBOR, bad signatures, and one
 *                     invalid VIEW-CHANGE re-sent unchanged
 *     batch-flood     unrequested batch bodies (about 64 KiB each) for sequence numbers nobody asked for
 *   as clients (client-<id>.key):
 *     bad-sigs        requests with invalid signatures, to every replica
 *     deep-cbor       frames of 20,000 nested CBOR arrays, to every replica
 *     same-timestamp  validly signed requests, a different one to the primary than to the backups for
 *                     each timestamp
 *     slowloris       HTTP requests that never finish their headers, and WebSocket connections that never
 *                     authenticate, kept open (and reopened when the replica closes them)
 *
 * Usage: node --import tsx bench/attacker.ts '<AttackConfig JSON>'. Every second, and on SIGTERM before
 * it exits, it prints one line `stats <AttackStats JSON>` on stdout. Frames are paced at `rate` per
 * second per target; a socket whose send buffer holds more than 8 MiB (the replica stopped reading)
 * is skipped until it drains (counted as `backpressured`). A connection a replica closes is dialed
 * again after 100 ms (counted as `closedByReplica`).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import WebSocket, { type RawData } from 'ws';
import { Authenticator, type CoreCrypto } from '../src/core/auth.ts';
import type { CheckpointMsg, CommitMsg, PrePrepareMsg, PrepareMsg, RequestMsg, Signed, SignedMessage, ViewChangeMsg } from '../src/core/messages.ts';
import { encodeBody, encodeLinkFrame, encodeSignedFrame } from '../src/codec/messages.ts';
import { encodeCbor } from '../src/core/encoding.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../src/crypto/node.ts';
import { keyFileName, loadPrivateKey } from '../src/crypto/keyring.ts';
import { dialerAnswerHello, dialerCheckWelcome, randomNonce, type DialerPending } from '../src/transport/handshake.ts';
import { encodeOp } from '../src/app/kv-ops.ts';
import { clusterFromJson, type ClusterJson } from './lib/keys.ts';

export const REPLICA_ATTACKS = ['vc-flood', 'future-votes', 'state-requests', 'garbage', 'batch-flood'] as const;
export const CLIENT_ATTACKS = ['bad-sigs', 'deep-cbor', 'same-timestamp', 'slowloris'] as const;
export type ReplicaAttack = (typeof REPLICA_ATTACKS)[number];
export type ClientAttack = (typeof CLIENT_ATTACKS)[number];
export type Attack = ReplicaAttack | ClientAttack;

export interface AttackConfig {
  attack: Attack;
  cluster: ClusterJson;
  keysDir: string;
  /** The byzantine replica's id (replica attacks). */
  replica: number;
  /** Byzantine client ids (client attacks). */
  clients: number[];
  /** Replicas attacked (those running). */
  targets: number[];
  /** Frames per second per target (slowloris: connections per target). */
  rate: number;
}

export interface AttackStats {
  framesSent: number;
  bytesSent: number;
  /** Ticks at which a socket was skipped because its send buffer was full. */
  backpressured: number;
  /** Connections the replicas closed (the attacker dials again). */
  closedByReplica: number;
  /** Slowloris: connections open now, and opened in all. */
  open: number;
  opened: number;
  /** Slowloris: age of the oldest connection still open (s). */
  oldestOpenSeconds: number;
  cpuSeconds: number;
}

const SEND_BUFFER_MAX = 8 * 1024 * 1024;
const PACE_MS = 10;

const stats: AttackStats = { framesSent: 0, bytesSent: 0, backpressured: 0, closedByReplica: 0, open: 0, opened: 0, oldestOpenSeconds: 0, cpuSeconds: 0 };
/** Slowloris: when each open connection was opened. */
const openedAt = new Map<object, number>();

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** One authenticated link to a replica, redialed when the replica closes it. */
class Link {
  ws: WebSocket | undefined;
  private stopped = false;

  constructor(private readonly dial: () => Promise<WebSocket>) {
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    this.dial().then(
      (ws) => {
        if (this.stopped) return ws.terminate();
        this.ws = ws;
        ws.on('close', () => {
          if (this.ws === ws) this.ws = undefined;
          if (!this.stopped) {
            stats.closedByReplica++;
            setTimeout(() => this.connect(), 100);
          }
        });
      },
      () => setTimeout(() => this.connect(), 100),
    );
  }

  /** Sends unless the link is down or congested. */
  send(frame: Uint8Array): boolean {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    if (ws.bufferedAmount > SEND_BUFFER_MAX) {
      stats.backpressured++;
      return false;
    }
    ws.send(frame, { binary: true });
    stats.framesSent++;
    stats.bytesSent += frame.length;
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

/** Dials `url` and runs the dialer side of the handshake as (kind, id), signing with `secretKey`. */
function dialAs(url: string, clusterId: string, serverId: number, serverPublicKey: Uint8Array, kind: 'replica' | 'client', id: number, secretKey: Uint8Array): () => Promise<WebSocket> {
  const signer = createNodeSigner(secretKey);
  const verifier = new NodeVerifier();
  const ctx = { clusterId, serverId, serverPublicKey, kind, id, signer, verifier };
  return () =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 5_000 });
      const nonce = randomNonce();
      let pending: DialerPending | undefined;
      let open = false;
      ws.on('message', (data) => {
        if (open) return; // replies, retransmissions: not read
        const bytes = toBytes(data);
        if (pending === undefined) {
          const r = dialerAnswerHello(ctx, nonce, bytes);
          if (!r.ok) return ws.terminate();
          pending = r.value.pending;
          ws.send(r.value.auth);
          return;
        }
        const r = dialerCheckWelcome(ctx, pending, bytes);
        if (!r.ok) return ws.terminate();
        open = true;
        resolve(ws);
      });
      ws.on('error', () => undefined);
      ws.on('close', () => {
        if (!open) reject(new Error('closed during the handshake'));
      });
    });
}

interface Status {
  view: number;
  primary: number;
  lastExecuted: number;
  stableCheckpoint: { seq: number; digest: string };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as AttackConfig;
  const cluster = clusterFromJson(config.cluster);
  const replicaUrl = (id: number): string => cluster.replicas[id]!.url;
  const statusUrl = (id: number): string => replicaUrl(id).replace(/^ws/, 'http') + '/status';

  // What a replica of the cluster knows anyway: the current view, its primary and the checkpoints.
  let status: Status = { view: 0, primary: 0, lastExecuted: 0, stableCheckpoint: { seq: 0, digest: '00'.repeat(32) } };
  const refresh = async (): Promise<void> => {
    for (const t of config.targets) {
      try {
        const res = await fetch(statusUrl(t), { signal: AbortSignal.timeout(1_000) });
        if (res.ok) {
          status = (await res.json()) as Status;
          return;
        }
      } catch {
        // next target
      }
    }
  };
  await refresh();
  const statusTimer = setInterval(() => void refresh(), 1_000);

  const timers: Array<ReturnType<typeof setInterval>> = [statusTimer];
  const links: Link[] = [];
  const sockets = new Set<net.Socket | WebSocket>();
  const cpuAtStart = process.cpuUsage();
  const report = (): void => {
    const cpu = process.cpuUsage(cpuAtStart);
    stats.cpuSeconds = (cpu.user + cpu.system) / 1e6;
    let oldest = Infinity;
    for (const t of openedAt.values()) oldest = Math.min(oldest, t);
    stats.oldestOpenSeconds = Number.isFinite(oldest) ? Math.round(performance.now() - oldest) / 1000 : 0;
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
  };
  timers.push(setInterval(report, 1_000));
  process.on('SIGTERM', () => {
    for (const t of timers) clearInterval(t);
    for (const l of links) l.stop();
    for (const s of sockets) (s instanceof WebSocket ? s.terminate() : s.destroy());
    report();
    process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));

  /** Every PACE_MS, `perTick` rounds; each round's frames go to every target (a frame per target and round). */
  const pace = (rounds: (round: number) => Array<{ to?: number; frame: Uint8Array }>, ratePerSecond: number): void => {
    let round = 0;
    let credit = 0;
    timers.push(
      setInterval(() => {
        credit += (ratePerSecond * PACE_MS) / 1000;
        while (credit >= 1) {
          credit--;
          for (const f of rounds(round++)) {
            for (let i = 0; i < links.length; i++) {
              if (f.to === undefined || config.targets[i] === f.to) links[i]!.send(f.frame);
            }
          }
        }
      }, PACE_MS),
    );
  };

  const attack = config.attack;
  if ((REPLICA_ATTACKS as readonly string[]).includes(attack)) {
    const me = config.replica;
    const secret = loadPrivateKey(join(config.keysDir, keyFileName('replica', me))).secretKey;
    const signer = createNodeSigner(secret);
    const crypto: CoreCrypto = { sign: (d) => signer.sign(d), verify: () => true, hash: sha256 };
    const auth = new Authenticator(cluster, crypto);
    for (const t of config.targets) {
      const r = cluster.replicas[t]!;
      links.push(new Link(dialAs(r.url, cluster.clusterId, t, r.publicKey, 'replica', me, secret)));
    }
    const digest = (): Uint8Array => new Uint8Array(randomBytes(32));
    const genesis = (): { epoch: number; seq: number; digest: Uint8Array; proof: [] } => ({
      epoch: 0,
      seq: status.stableCheckpoint.seq,
      digest: new Uint8Array(Buffer.from(status.stableCheckpoint.digest, 'hex')),
      proof: [],
    });
    const K = 128;
    const L = 256;
    switch (attack as ReplicaAttack) {
      case 'vc-flood':
        pace((round) => {
          if (round % 2 === 0) {
            const vc = auth.sign<ViewChangeMsg>({ type: 'viewchange', view: status.view + 1 + (round >> 1), replica: me, checkpoint: genesis(), prepared: [] });
            return [{ frame: encodeSignedFrame(vc) }];
          }
          const seq = (Math.floor(status.lastExecuted / K) + 1 + ((round >> 1) % 3)) * K;
          return [{ frame: encodeSignedFrame(auth.sign<CheckpointMsg>({ type: 'checkpoint', seq, digest: digest(), replica: me, epoch: 0 })) }];
        }, config.rate);
        break;
      case 'future-votes':
        pace((round) => {
          const kind = (['preprepare', 'prepare', 'commit'] as const)[round % 3]!;
          // Alternately: the current view far beyond the window, and far-future views.
          const view = round % 2 === 0 ? status.view : status.view + 1_000 + round;
          const seq = status.stableCheckpoint.seq + L + 1 + round * 7;
          const msg = { type: kind, view, seq, digest: digest(), replica: me } as PrePrepareMsg | PrepareMsg | CommitMsg;
          return [{ frame: encodeSignedFrame(auth.sign(msg)) }];
        }, config.rate);
        break;
      case 'state-requests': {
        const groups = Array.from({ length: 64 }, (_, i) => i);
        const partitions = Array.from({ length: 4096 }, (_, i) => i);
        pace((round) => {
          const seq = status.stableCheckpoint.seq;
          switch (round % 4) {
            case 0:
              return [{ frame: encodeLinkFrame({ type: 'statereq', seq, part: { kind: 'meta' } }) }];
            case 1:
              return [{ frame: encodeLinkFrame({ type: 'statereq', seq, part: { kind: 'leaves', groups } }) }];
            case 2:
              return [{ frame: encodeLinkFrame({ type: 'statereq', seq, part: { kind: 'partitions', indices: partitions.slice((round * 64) % 4096, ((round * 64) % 4096) + 64) } }) }];
            default:
              return [{ frame: encodeLinkFrame({ type: 'fetch', from: Math.max(1, status.lastExecuted - 200), to: status.lastExecuted + 1_000_000, epoch: 0 }) }];
          }
        }, config.rate);
        break;
      }
      case 'garbage': {
        // One invalid VIEW-CHANGE (a signature that does not verify), the same bytes again and again.
        const vcBody = encodeBody({ type: 'viewchange', view: status.view + 1, replica: me, checkpoint: genesis(), prepared: [] } as SignedMessage);
        const sameInvalid = encodeCbor([0, vcBody, new Uint8Array(64)]);
        pace((round) => {
          switch (round % 4) {
            case 0:
              return [{ frame: new Uint8Array(randomBytes(64 + (round % 512))) }];
            case 1:
              return [{ frame: sameInvalid }];
            case 2: {
              const body = encodeBody({ type: 'commit', view: status.view, seq: status.lastExecuted + 1, digest: digest(), replica: me });
              return [{ frame: encodeCbor([0, body, new Uint8Array(randomBytes(64))]) }];
            }
            default:
              return [{ frame: sameInvalid.subarray(0, sameInvalid.length - 10) }];
          }
        }, config.rate);
        break;
      }
      case 'batch-flood': {
        // A batch body of 60 requests of ~1 KiB each (client signatures it cannot make: random), for
        // sequence numbers in and beyond the window; ~64 KiB a frame. A pool of 64 frames, rebuilt
        // every second as the window moves, so that the attacker's own CPU (on the same machine)
        // stays small.
        const op = new Uint8Array(1_000).fill(7);
        const build = (k: number): Uint8Array => {
          const sigs = randomBytes(64 * 60);
          const batch: Signed<RequestMsg>[] = Array.from({ length: 60 }, (_, i) => {
            const msg: RequestMsg = { type: 'request', client: i % cluster.clients.length, timestamp: Date.now() * 100 + k * 60 + i, op };
            return { msg, body: encodeBody(msg), sig: new Uint8Array(sigs.subarray(i * 64, i * 64 + 64)) };
          });
          return encodeLinkFrame({ type: 'batch', seq: status.lastExecuted + 1 + ((k * 8) % (2 * L)), digest: digest(), batch, time: Date.now() });
        };
        let pool = Array.from({ length: 64 }, (_, k) => build(k));
        timers.push(setInterval(() => (pool = pool.map((_, k) => build(k))), 1_000));
        pace((round) => [{ frame: pool[round % pool.length]! }], config.rate);
        break;
      }
    }
    return;
  }

  // Client attacks.
  const ids = config.clients;
  const secrets = ids.map((id) => loadPrivateKey(join(config.keysDir, keyFileName('client', id))).secretKey);
  if (attack === 'slowloris') {
    // Half of the connections: HTTP requests that never finish their headers (one header line a
    // second); the other half: WebSocket upgrades that never send AUTH.
    const perTarget = config.rate;
    const open = (target: number, i: number): void => {
      const url = new URL(replicaUrl(target));
      const reopen = (): void => {
        stats.open--;
        stats.closedByReplica++;
        setTimeout(() => open(target, i), 100);
      };
      stats.opened++;
      stats.open++;
      if (i % 2 === 0) {
        const s = net.connect({ host: url.hostname, port: Number(url.port) });
        sockets.add(s);
        openedAt.set(s, performance.now());
        s.on('error', () => undefined);
        s.on('connect', () => s.write(`GET /status HTTP/1.1\r\nHost: ${url.host}\r\n`));
        const drip = setInterval(() => s.writable && s.write(`X-${i}: ${Date.now()}\r\n`), 1_000);
        s.on('close', () => {
          clearInterval(drip);
          sockets.delete(s);
          openedAt.delete(s);
          reopen();
        });
      } else {
        const ws = new WebSocket(replicaUrl(target), { perMessageDeflate: false });
        sockets.add(ws);
        openedAt.set(ws, performance.now());
        ws.on('error', () => undefined);
        ws.on('close', () => {
          sockets.delete(ws);
          openedAt.delete(ws);
          reopen();
        });
      }
    };
    for (const t of config.targets) for (let i = 0; i < perTarget; i++) open(t, i);
    return;
  }
  for (const t of config.targets) {
    const r = cluster.replicas[t]!;
    for (let k = 0; k < ids.length; k++) links.push(new Link(dialAs(r.url, cluster.clusterId, t, r.publicKey, 'client', ids[k]!, secrets[k]!)));
  }
  // links[] is target-major: link i is client ids[i % ids.length] at target config.targets[floor(i / ids.length)].
  const linkOf = (target: number, k: number): Link | undefined => links[config.targets.indexOf(target) * ids.length + k];
  const every = (frameFor: (k: number, round: number, target: number) => Uint8Array | undefined, rate: number): void => {
    let round = 0;
    let credit = 0;
    timers.push(
      setInterval(() => {
        credit += (rate * PACE_MS) / 1000;
        while (credit >= 1) {
          credit--;
          const k = round % ids.length;
          for (const t of config.targets) {
            const frame = frameFor(k, round, t);
            if (frame !== undefined) linkOf(t, k)?.send(frame);
          }
          round++;
        }
      }, PACE_MS),
    );
  };
  const signers = secrets.map((s) => createNodeSigner(s));
  const requestTag = (): Uint8Array => new TextEncoder().encode(`pbft/1/request/${cluster.clusterId}\0`);
  const tag = requestTag();
  const signRequest = (k: number, timestamp: number, op: Uint8Array): Signed<RequestMsg> => {
    const msg: RequestMsg = { type: 'request', client: ids[k]!, timestamp, op };
    const body = encodeBody(msg);
    const data = new Uint8Array(tag.length + body.length);
    data.set(tag);
    data.set(body, tag.length);
    return { msg, body, sig: signers[k]!.sign(data) };
  };
  // Timestamps above anything the SDK would have used for these identities (none did).
  const base = Date.now() * 1000;
  switch (attack as ClientAttack) {
    case 'bad-sigs': {
      const op = encodeOp({ type: 'put', key: 'attack', value: 'x' });
      every((k, round) => {
        const msg: RequestMsg = { type: 'request', client: ids[k]!, timestamp: base + round, op };
        return encodeSignedFrame({ msg, body: encodeBody(msg), sig: new Uint8Array(randomBytes(64)) });
      }, config.rate);
      break;
    }
    case 'deep-cbor': {
      const depth = 20_000;
      const frame = new Uint8Array(depth + 1).fill(0x81);
      frame[depth] = 0x00;
      every(() => frame, config.rate);
      break;
    }
    case 'same-timestamp': {
      // One request per client and timestamp for the primary, another for the backups, both signed.
      let forRound = -1;
      let pair: [Uint8Array, Uint8Array] | undefined;
      every((k, round, target) => {
        if (forRound !== round) {
          forRound = round;
          const ts = base + round;
          const a = signRequest(k, ts, encodeOp({ type: 'put', key: `attack-${ids[k]}`, value: `primary ${round}` }));
          const b = signRequest(k, ts, encodeOp({ type: 'put', key: `attack-${ids[k]}`, value: `backups ${round}` }));
          pair = [encodeSignedFrame(a), encodeSignedFrame(b)];
        }
        return target === status.primary ? pair![0] : pair![1];
      }, config.rate);
      break;
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`attacker: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
