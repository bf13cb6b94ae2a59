/** The client's retransmission timer (src/client/rto.ts): RFC 6298's estimator with Karn's rule. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetransmitEstimator } from '../../src/client/rto.ts';

test('without samples, and with fast ones, the timer is the configured retransmitMs', () => {
  const e = new RetransmitEstimator(300, 2_400);
  assert.equal(e.timeoutMs, 300);
  for (let i = 0; i < 50; i++) e.sample(4);
  assert.equal(e.timeoutMs, 300);
});

test('latencies above the timer raise it past them, up to the cap', () => {
  const e = new RetransmitEstimator(300, 2_400);
  for (let i = 0; i < 50; i++) e.sample(400 + (i % 5) * 20);
  assert.ok(e.timeoutMs > 480 && e.timeoutMs < 700, `${e.timeoutMs}`);
  for (let i = 0; i < 50; i++) e.sample(60_000);
  assert.equal(e.timeoutMs, 2_400);
  // Fast again: back down to the floor within a few dozen requests.
  for (let i = 0; i < 60; i++) e.sample(5);
  assert.equal(e.timeoutMs, 300);
});

test('requests that needed a retransmission double the next wait until one is accepted on its first transmission', () => {
  const e = new RetransmitEstimator(20, 160);
  e.retransmitted();
  assert.equal(e.timeoutMs, 40);
  e.retransmitted();
  e.retransmitted();
  assert.equal(e.timeoutMs, 160);
  e.retransmitted();
  assert.equal(e.timeoutMs, 160, 'capped');
  e.sample(50);
  assert.equal(e.timeoutMs, 150, 'a sample ends the backoff: 50 + 4 x 25 (the first sample\'s deviation is half of it)');
  e.sample(Number.NaN);
  e.sample(-1);
  assert.equal(e.timeoutMs, 150, 'nonsense samples are ignored');
});
