/**
 * Ports for tests and benchmarks: `count` distinct TCP ports on 127.0.0.1 that were free a moment
 * ago (all bound to port 0 together, then released, so the kernel hands out distinct ones).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}
