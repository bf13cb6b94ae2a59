/**
 * The replica loop's inbound queue (src/node/loop.ts): frames are taken round-robin across senders,
 * at most TURN_FRAMES_MAX per turn, and one sender's share is bounded, so a peer or client that
 * floods cannot starve the others nor hold the event loop for its whole backlog.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SOURCE_QUEUE_BYTES_MAX, TURN_FRAMES_MAX, TurnLoop } from '../../src/node/loop.ts';
import { LATE_TICKS_MAX } from '../../src/core/timeout.ts';
import type { Ready, Replica, Source } from '../../src/core/replica.ts';

/** A loop on the real clock (ticks of `tickMs`) around `replica`, its first turn run. */
async function realTimeLoop(replica: Replica, tickMs: number): Promise<TurnLoop> {
  const loop = new TurnLoop(
    { write: (_ops, _clears, _horizon, done) => setImmediate(() => done()) },
    { running: () => true, perform: () => undefined, fatal: (err) => assert.fail(String(err)) },
    { tickMs, now: () => performance.now(), wallClockMs: () => Date.now(), pipelineTurns: true, deferWrites: true },
  );
  loop.attach(replica, undefined);
  await loop.runFirstTurn();
  return loop;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Frames received before each flush (one turn each). */
const turnEnds: number[] = [];

function fakeReplica(received: Array<{ from: Source; tag: number }>): Replica {
  let index = 0;
  return {
    receive: (from: Source, frame: Uint8Array) => received.push({ from, tag: frame[0]! }),
    tick: () => undefined,
    setClockMs: () => undefined,
    flush: (): Ready => (turnEnds.push(received.length), { index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } }),
  } as unknown as Replica;
}

function loopWith(received: Array<{ from: Source; tag: number }>): TurnLoop {
  const loop = new TurnLoop(
    { write: (_ops, _clears, _horizon, done) => setImmediate(() => done()) },
    { running: () => true, perform: () => undefined, fatal: (err) => assert.fail(String(err)) },
    { tickMs: 1_000_000, now: () => 0, wallClockMs: () => 0, pipelineTurns: true, deferWrites: true },
  );
  loop.attach(fakeReplica(received), undefined);
  return loop;
}

test('a flooding sender gets a share of each turn; the others are served in the first turn', async () => {
  const received: Array<{ from: Source; tag: number }> = [];
  const loop = loopWith(received);
  turnEnds.length = 0;
  for (let i = 0; i < 5_000; i++) loop.enqueue({ kind: 'replica', id: 1 }, Uint8Array.of(1));
  for (let i = 0; i < 3; i++) loop.enqueue({ kind: 'client', id: 7 }, Uint8Array.of(7));
  loop.enqueue({ kind: 'replica', id: 2 }, Uint8Array.of(2));
  assert.equal(loop.queuedFrames, 5_004);
  await loop.runFirstTurn();
  const first = received.slice(0, TURN_FRAMES_MAX);
  assert.equal(first.filter((r) => r.tag === 7).length, 3, 'the client was served in the first turn');
  assert.equal(first.filter((r) => r.tag === 2).length, 1);
  assert.equal(turnEnds[0], TURN_FRAMES_MAX, 'the first turn took TURN_FRAMES_MAX frames, not the whole backlog');
  // Each sender's frames stay in order: the client's three come before the flooder's fourth.
  assert.deepEqual(received.slice(0, 6).map((r) => r.tag), [1, 7, 2, 1, 7, 1]);
  // Later turns (scheduled after I/O) take the rest.
  await new Promise<void>((resolve) => {
    const poll = (): void => (loop.queuedFrames === 0 ? resolve() : void setTimeout(poll, 5));
    poll();
  });
  assert.equal(received.length, 5_004);
  assert.ok(turnEnds.length >= Math.ceil(5_004 / TURN_FRAMES_MAX), `${turnEnds.length} turns`);
});

test('one sender cannot fill the whole inbound bound: beyond its share its frames are dropped and counted', () => {
  const received: Array<{ from: Source; tag: number }> = [];
  const loop = loopWith(received);
  const big = new Uint8Array(1024 * 1024);
  const fits = Math.floor(SOURCE_QUEUE_BYTES_MAX / big.length);
  for (let i = 0; i < fits + 5; i++) loop.enqueue({ kind: 'client', id: 3 }, big);
  assert.equal(loop.inboundFramesDropped, 5);
  loop.enqueue({ kind: 'client', id: 4 }, big);
  assert.equal(loop.inboundFramesDropped, 5, 'another sender still gets in');
  assert.equal(loop.queuedFrames, fits + 1);
  loop.clearQueue();
});

test('every turn gives the core the wall clock before its ticks and frames (batch times: Replica.setClockMs)', async () => {
  const calls: string[] = [];
  let wall = 1_700_000_000_000.7;
  let index = 0;
  const replica = {
    receive: () => calls.push('receive'),
    tick: () => calls.push('tick'),
    setClockMs: (ms: number) => calls.push(`clock ${ms}`),
    flush: (): Ready => ({ index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } }),
  } as unknown as Replica;
  let now = 0;
  const loop = new TurnLoop(
    { write: (_ops, _clears, _horizon, done) => setImmediate(() => done()) },
    { running: () => true, perform: () => undefined, fatal: (err) => assert.fail(String(err)) },
    { tickMs: 10, now: () => now, wallClockMs: () => wall, pipelineTurns: true, deferWrites: true },
  );
  loop.attach(replica, undefined);
  await loop.runFirstTurn();
  assert.deepEqual(calls, ['clock 1700000000000'], 'whole milliseconds');
  calls.length = 0;
  now = 20;
  wall += 20;
  loop.enqueue({ kind: 'client', id: 1 }, Uint8Array.of(1));
  await new Promise<void>((resolve) => {
    const poll = (): void => (calls.includes('receive') ? resolve() : void setTimeout(poll, 2));
    poll();
  });
  assert.deepEqual(calls.slice(0, 4), ['clock 1700000000020', 'tick', 'tick', 'receive']);
});

test('an idle loop sleeps through the ticks its core calls quiet, and still runs every tick (late, before the next frames)', async () => {
  const calls: string[] = [];
  let quiet = 0;
  let ticks = 0;
  let index = 0;
  let flushedAt = 0;
  const replica = {
    receive: () => calls.push(`receive after ${ticks} ticks`),
    tick: () => void ticks++,
    setClockMs: () => undefined,
    quietTicks: () => quiet,
    flush: (): Ready => {
      flushedAt = performance.now();
      return { index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } };
    },
  } as unknown as Replica;
  const tickMs = 5;
  const loop = await realTimeLoop(replica, tickMs);
  /** A turn now (runTurnSoon); resolves with the time it ran, once it has. */
  const turnNow = async (): Promise<number> => {
    const before = index;
    loop.runTurnSoon();
    while (index === before) await sleep(1);
    return flushedAt;
  };
  /** `ms` without frames, between two turns of our own: the wake-ups meanwhile, and the ticks run against the time elapsed. */
  const phase = async (ms: number): Promise<{ wakeups: number; ticks: number; dropped: number; lateTurns: number; elapsed: number }> => {
    const from = await turnNow();
    const w0 = loop.tickWakeups;
    const t0 = ticks;
    const d0 = loop.lateTicksDropped;
    const l0 = loop.lateTurns;
    await sleep(ms);
    const wakeups = loop.tickWakeups - w0;
    const to = await turnNow();
    return { wakeups, ticks: ticks - t0, dropped: loop.lateTicksDropped - d0, lateTurns: loop.lateTurns - l0, elapsed: to - from };
  };
  loop.startTicking();
  try {
    // Nothing quiet: a wake-up for every tick.
    const busy = await phase(300);
    assert.ok(busy.wakeups >= 15, `${busy.wakeups} wake-ups in ${busy.elapsed.toFixed(0)} ms with ticks of ${tickMs} ms`);
    // The core says its next 39 ticks are quiet: a wake-up every 40 ticks (200 ms).
    quiet = 39;
    const idle = await phase(600);
    assert.ok(idle.wakeups <= 6, `${idle.wakeups} wake-ups in ${idle.elapsed.toFixed(0)} ms while every 40 ticks of ${tickMs} ms are quiet`);
    // The quiet ticks are not lost: they run late, each wake-up (or turn) runs those elapsed since
    // the last. (Only a wake-up later than LATE_TICKS_MAX ticks past the quiet ones drops ticks, and
    // counts them: on a loaded machine a timer can be that late. Such a late turn restarts the tick
    // count from its own time, so the part of a tick it had run into is neither run nor counted:
    // at most one per late turn.)
    for (const p of [busy, idle]) {
      const expected = p.elapsed / tickMs;
      assert.ok(
        Math.abs(p.ticks + p.dropped - expected) <= 2 + p.lateTurns,
        `${p.ticks} ticks (and ${p.dropped} dropped in ${p.lateTurns} late turns) between two turns ${p.elapsed.toFixed(1)} ms apart (ticks of ${tickMs} ms)`,
      );
    }
    // (Were the quiet ticks counted as lateness, each wake-up would run LATE_TICKS_MAX of its 40.)
    assert.ok(idle.ticks >= idle.elapsed / tickMs / 2, `${idle.ticks} ticks run in ${idle.elapsed.toFixed(0)} ms while every 40 ticks were quiet: the loop slept through them on the core's word`);
    // A frame does not wait for the wake-up: its turn runs at once, after the ticks elapsed. (Just
    // after a wake-up, with 99 quiet ticks: the next one is half a second away.)
    quiet = 99;
    const woke = loop.tickWakeups;
    while (loop.tickWakeups === woke) await sleep(1);
    await sleep(4 * tickMs);
    const wakeups = loop.tickWakeups;
    const before = ticks;
    loop.enqueue({ kind: 'client', id: 1 }, Uint8Array.of(1));
    while (calls.length === 0) await sleep(1);
    assert.equal(loop.tickWakeups, wakeups, 'the frame was received before the next wake-up');
    assert.ok(ticks - before >= 3, `the ticks elapsed ran first: ${ticks - before}`);
  } finally {
    loop.stopTicking();
  }
});

test("a turn that starts late because of the process's own stall runs at most LATE_TICKS_MAX ticks: the rest is dropped and counted", async () => {
  let ticks = 0;
  let index = 0;
  let stallMs = 0;
  const perTurn: number[] = [];
  let turnTicks = 0;
  const replica = {
    receive: () => undefined,
    tick: () => {
      ticks++;
      turnTicks++;
    },
    setClockMs: () => undefined,
    quietTicks: () => 0,
    flush: (): Ready => {
      perTurn.push(turnTicks);
      turnTicks = 0;
      // A long turn: the process holds its loop (e.g. a checkpoint slice, or here a busy wait).
      const until = performance.now() + stallMs;
      stallMs = 0;
      while (performance.now() < until) {
        // busy
      }
      return { index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } };
    },
  } as unknown as Replica;
  const tickMs = 5;
  const loop = await realTimeLoop(replica, tickMs);
  loop.startTicking();
  try {
    await sleep(50);
    const before = { dropped: loop.lateTicksDropped, lateTurns: loop.lateTurns, turns: perTurn.length };
    // The next turn stalls 300 ms (60 ticks of 5 ms); the turn after it starts 60 ticks late.
    stallMs = 300;
    const at = index;
    while (index < at + 3) await sleep(1);
    const after = perTurn.slice(before.turns);
    assert.ok(after.every((n) => n <= LATE_TICKS_MAX), `ticks per turn ${after.join(', ')}: none above ${LATE_TICKS_MAX}`);
    const dropped = loop.lateTicksDropped - before.dropped;
    assert.ok(dropped >= 60 - LATE_TICKS_MAX - 5, `${dropped} ticks dropped after a stall of 60 ticks`);
    assert.ok(loop.lateTurns - before.lateTurns >= 1, 'the late turn is counted');
  } finally {
    loop.stopTicking();
  }
});
