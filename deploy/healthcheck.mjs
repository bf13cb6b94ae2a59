#!/usr/bin/env node
// The container's HEALTHCHECK (Dockerfile): healthy when the replica in this container answers
// GET /status with HTTP 200 and a replica's status (a numeric `id`, a `status` string, a
// `clusterId`), and, when PBFT_ID is set, that id. Plain JavaScript with no dependencies: it
// starts fast and needs no TypeScript loader.
//
// Where it asks: PBFT_HEALTH_URL (e.g. http://127.0.0.1:7101/status) if set; otherwise the port of
// PBFT_LISTEN (host:port, the replica's own setting) on 127.0.0.1; otherwise 127.0.0.1:7001, the
// port of every replica in docker-compose.yml and deploy/compose/replica.yml.
// Exit status 0: healthy; 1: unhealthy (Docker reserves other codes). One line on stdout or stderr.

const TIMEOUT_MS = 3_000;

/** The /status URL to ask, from the environment. */
function healthUrl(env) {
  if (env.PBFT_HEALTH_URL) return env.PBFT_HEALTH_URL;
  const listen = env.PBFT_LISTEN ?? '';
  const port = /:(\d+)$/.exec(listen)?.[1] ?? '7001';
  return `http://127.0.0.1:${port}/status`;
}

/** Resolves with [exitCode, line]. */
async function check(env) {
  const url = healthUrl(env);
  let res;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const why = err?.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS} ms` : (err?.cause?.code ?? err?.message ?? String(err));
    return [1, `unhealthy: ${url}: ${why}`];
  }
  const text = await res.text();
  if (res.status !== 200) return [1, `unhealthy: ${url}: HTTP ${res.status}`];
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return [1, `unhealthy: ${url}: not JSON`];
  }
  if (body === null || typeof body !== 'object' || typeof body.id !== 'number' || typeof body.status !== 'string' || typeof body.clusterId !== 'string') {
    return [1, `unhealthy: ${url}: not a replica's status`];
  }
  if (env.PBFT_ID !== undefined && env.PBFT_ID !== '' && String(body.id) !== env.PBFT_ID) {
    return [1, `unhealthy: ${url}: answers as replica ${body.id}, not ${env.PBFT_ID}`];
  }
  return [0, `healthy: replica ${body.id} of cluster ${body.clusterId}, ${body.status}, view ${body.view}, last executed ${body.lastExecuted}`];
}

const [code, line] = await check(process.env);
(code === 0 ? process.stdout : process.stderr).write(line + '\n');
process.exit(code);
