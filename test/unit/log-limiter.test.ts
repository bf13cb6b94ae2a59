/** A flood of one misbehaviour writes one log line per peer and code per window, not one per frame. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogLimiter, logCoreEvent } from '../../src/node/log.ts';
import type { Logger } from '../../src/util/log.ts';

test('one line per key per window; the lines held back are counted into the next', () => {
  let now = 0;
  const limiter = new LogLimiter(10_000, () => now);
  const lines: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
  const log = { warn: (msg: string, fields?: Record<string, unknown>) => lines.push({ msg, fields }) } as unknown as Logger;
  const event = { type: 'peer-misbehaved' as const, peer: 2, code: 'invalid-view-change' as const, reason: 'bad certificate' };
  for (let i = 0; i < 5_000; i++) {
    now = i; // 5,000 frames in 5 s
    logCoreEvent(log, event, 10, limiter);
  }
  logCoreEvent(log, { ...event, peer: 3 }, 10, limiter);
  assert.equal(lines.length, 2, 'one line for peer 2, one for peer 3');
  now = 10_001;
  logCoreEvent(log, event, 10, limiter);
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.fields?.sameSinceLastLine, 4_999);
});
