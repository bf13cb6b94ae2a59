/**
 * The keys part's loader (bench/bench.ts --keys N): writes N keys of 100-byte values through the
 * protocol, as put-many operations (src/app/kv-ops.ts), from a few closed-loop clients in this
 * process. Keys and values are a function of the key's index, so every run loads the same state.
 */
import { encodeOp, PUT_MANY_ENTRIES_MAX } from '../src/app/kv-ops.ts';
import { PbftClient } from '../src/client/client.ts';
import { loadPrivateKey, keyFileName } from '../src/crypto/keyring.ts';
import { join } from 'node:path';
import { clusterFromJson, type ClusterJson } from './lib/keys.ts';

/** Value bytes of every loaded key (the figure). */
export const LOAD_VALUE_BYTES = 100;
/**
 * Pairs per put-many: 512 x about 122 bytes, 62 KB. Requests of 0.5 MiB (4096 pairs) were slower: on
 * this machine a batch of them takes longer than the view-change timeout to order and sync, and the
 * cluster changed views 23 times in the first 270k keys (1,600 keys/s).
 */
export const LOAD_PAIRS_PER_OP = Math.min(512, PUT_MANY_ENTRIES_MAX);

/** The loaded key with index i: "load/" and 10 digits (15 bytes). */
export function loadKey(i: number): string {
  return `load/${String(i).padStart(10, '0')}`;
}

/** The loaded value of key i: 100 bytes derived from i. */
export function loadValue(i: number): Uint8Array {
  const v = new Uint8Array(LOAD_VALUE_BYTES);
  for (let j = 0; j < v.length; j++) v[j] = (i * 131 + j * 7) & 0xff;
  return v;
}

export interface LoadConfig {
  cluster: ClusterJson;
  keysDir: string;
  clientIds: number[];
  keys: number;
  timeoutMs: number;
  retransmitMs: number;
}

export interface Loader {
  /** Loads keys [0, keys): resolves when every put-many is accepted. */
  load(onProgress?: (loaded: number) => void): Promise<void>;
  /** One ordinary put through the first client (a request every replica must execute). */
  put(key: string, value: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export async function connectLoader(c: LoadConfig): Promise<Loader> {
  const cluster = clusterFromJson(c.cluster);
  const clients = await Promise.all(
    c.clientIds.map((id) => {
      const key = loadPrivateKey(join(c.keysDir, keyFileName('client', id)));
      return PbftClient.connect({ cluster, key: { id, secretKey: key.secretKey }, crypto: 'node', timeoutMs: c.timeoutMs, retransmitMs: c.retransmitMs, connectTimeoutMs: 60_000 });
    }),
  );
  return {
    async load(onProgress) {
      let next = 0;
      let loaded = 0;
      const one = async (client: PbftClient): Promise<void> => {
        for (;;) {
          const start = next;
          if (start >= c.keys) return;
          const end = Math.min(c.keys, start + LOAD_PAIRS_PER_OP);
          next = end;
          const pairs: Array<[string, Uint8Array]> = [];
          for (let i = start; i < end; i++) pairs.push([loadKey(i), loadValue(i)]);
          await client.putMany(pairs);
          loaded += end - start;
          onProgress?.(loaded);
        }
      };
      await Promise.all(clients.map(one));
    },
    async put(key, value) {
      await clients[0]!.invoke(encodeOp({ type: 'put', key, value }));
    },
    async close() {
      await Promise.all(clients.map((x) => x.close().catch(() => undefined)));
    },
  };
}
