/**
 * Dead-link detection: a WebSocket over which nothing (no frame, ping or pong) arrived for
 * `silenceMsMax` is closed, so that the dialer reconnects at once. Without it, a link that lost its
 * packets for a while (a partition, a blackhole route) stays "open" on both ends while TCP backs
 * off its retransmissions for minutes, and a replica that was cut off does not hear the others
 * again long after the network healed.
 */
import WebSocket from 'ws';

export function startHeartbeat(ws: WebSocket, intervalMs: number, silenceMsMax: number, onSilent: () => void): void {
  let heard = Date.now();
  const hear = (): void => {
    heard = Date.now();
  };
  ws.on('pong', hear);
  ws.on('ping', hear);
  ws.on('message', hear);
  const timer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - heard > silenceMsMax) {
      clearInterval(timer);
      onSilent();
      ws.terminate();
      return;
    }
    try {
      ws.ping();
    } catch {
      // closing: the close handler cleans up
    }
  }, intervalMs);
  timer.unref?.();
  ws.once('close', () => clearInterval(timer));
}
