/**
 * The bridge's safety state machine on a manual clock (test/helpers/clock.ts): fake radio I/O and
 * a fake channel session (the part of ChannelSession a bridge uses, driven by hand), so that every
 * rule is checked in simulated milliseconds and none waits in real time. The audio pipelines run
 * as they do in the daemon; only what reaches the transmitter and the channel is looked at.
 */
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { Bridge } from '../../gateway/src/bridge/bridge.js';
import { BridgeSchema } from '../../gateway/src/bridge/schema.js';
import type { BridgeState } from '../../gateway/src/bridge/types.js';
import { OutgoingOver } from '../../gateway/shared/channel/outgoing.js';
import type { ChannelSession } from '../../gateway/shared/channel/session.js';
import type { AudioFrame, OverReport, SessionEvents, TalkerInfo, Wire } from '../../gateway/shared/channel/types.js';
import type { FrameEncoder } from '../../gateway/shared/codec/codec.js';
import { Emitter } from '../../gateway/shared/core/emitter.js';
import type { AudioOut, AudioOutEvents, AudioState, Ptt, PttEvents } from '../../gateway/src/radio/types.js';
import { ManualClock } from '../helpers/clock.js';
import { FakeCapture, FakeCarrier, NO_LEVELS } from '../helpers/radio-fakes.js';

const CARD_RATE = 48000;

class FakePtt extends Emitter<PttEvents> implements Ptt {
  readonly description = 'fake PTT';
  keyed = false;
  /** Every change of the line, at its simulated time. */
  readonly changes: Array<{ at: number; on: boolean }> = [];
  /** key() calls, whether or not the line was keyed already. */
  keyCalls = 0;
  closed = false;
  /** The next key() fails (a relay that does not pull in, a serial port gone). */
  failNextKey = false;
  constructor(private readonly clock: ManualClock) {
    super();
  }
  get keyCount(): number {
    return this.changes.filter((c) => c.on).length;
  }
  async open() {}
  async key() {
    this.keyCalls++;
    if (this.failNextKey) {
      this.failNextKey = false;
      throw new Error('line did not key');
    }
    this.set(true);
  }
  async unkey() {
    this.set(false);
  }
  /** Releases the device and leaves the line as it is: unkeying before that is the bridge's job. */
  async close() {
    this.closed = true;
  }
  private set(on: boolean) {
    if (on !== this.keyed) this.changes.push({ at: this.clock.now(), on });
    this.keyed = on;
  }
}

class FakeIn extends FakeCapture {
  constructor() {
    super(CARD_RATE);
  }
  /** 20 ms of a 1 kHz tone, as a card delivers it. */
  block() {
    const b = new Int16Array(CARD_RATE / 50);
    for (let i = 0; i < b.length; i++) b[i] = Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / CARD_RATE));
    this.push(b);
  }
}

class FakeOut extends Emitter<AudioOutEvents> implements AudioOut {
  readonly description = 'fake transmitter audio';
  readonly sampleRate = CARD_RATE;
  state: AudioState = 'running';
  /** When each block reached the transmitter (simulated ms). */
  readonly writes: number[] = [];
  constructor(private readonly clock: ManualClock) {
    super();
  }
  write() {
    this.writes.push(this.clock.now());
    return true;
  }
  async drain() {}
  levels() {
    return NO_LEVELS;
  }
  async close() {}
}

/** What the bridge uses of a channel session: its events (raised by the test), the floor holder, talk() and notice(). */
class FakeChannel extends Emitter<SessionEvents> {
  readonly topics = { channel: 'link' };
  holder: TalkerInfo | null = null;
  /** Overs the bridge started here: packets sent on each, and how each ended. */
  readonly overs: Array<{ packets: number; ended: string | null }> = [];
  readonly notices: string[] = [];

  talk(o: { sampleRate: number; frameMs: number; framesPerPacket: number }): OutgoingOver | { busy: TalkerInfo } {
    if (this.holder) return { busy: this.holder };
    const rec = { packets: 0, ended: null as string | null };
    this.overs.push(rec);
    const wire: Wire = {
      control: (_sender, m) => {
        if (m.type === 'end') rec.ended = m.reason;
      },
      audio: () => rec.packets++,
    };
    const info: TalkerInfo = { stream: `ours-${this.overs.length}`, sender: 'gw', name: 'gw', source: 'radio', t: 0, self: true };
    this.holder = info;
    return new OutgoingOver(wire, info, o.sampleRate, o.frameMs, o.framesPerPacket, () => {
      if (this.holder === info) this.holder = null;
    });
  }

  notice(code: string): void {
    this.notices.push(code);
  }
}

function fakeEncoder(): FrameEncoder {
  return { sampleRate: 16000, frameSamples: 320, lookahead: 0, backend: 'fake', encode: () => new Uint8Array(1), close() {} };
}

let streams = 0;
function talker(name = 'Base', sender = 'base'): TalkerInfo {
  return { stream: `s${++streams}`, sender, name, source: 'cli', t: 0, self: false, lagMs: 0 };
}

async function rig(t: Test, config: Record<string, unknown> = {}, o: { monitor?: boolean } = {}) {
  const clock = new ManualClock();
  const ptt = new FakePtt(clock);
  const cos = new FakeCarrier();
  const input = new FakeIn();
  const output = new FakeOut(clock);
  const ch = new FakeChannel();
  const session = ch as unknown as ChannelSession;
  const logs: Array<Record<string, unknown>> = [];
  const bridge = new Bridge({
    radio: { name: 'r', ptt, cos, input, output },
    transmit: session,
    monitor: o.monitor === false ? [] : [session],
    encoder: fakeEncoder(),
    frameMs: 20,
    framesPerPacket: 2,
    config: BridgeSchema.parse(config),
    log: pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) }),
    clock,
  });
  const states: Array<{ at: number; to: BridgeState }> = [];
  bridge.on('state', (_from, to) => states.push({ at: clock.now(), to }));
  await bridge.start();
  t.teardown(() => bridge.stop());

  /** A remote over takes the floor and its first decodable audio is here: the moment a gateway keys. */
  const begin = (who: TalkerInfo) => {
    ch.holder = who;
    ch.emit('floor', who);
    ch.emit('audible', who);
  };
  /** `ms` of the over's playout, a 20 ms frame every 20 ms; returns when the last frame played. */
  const play = async (who: TalkerInfo, ms: number, concealed = false) => {
    let last = clock.now();
    for (let i = 0; i < ms / 20; i++) {
      last = clock.now();
      const f: AudioFrame = { pcm: new Int16Array(320).fill(1000), sampleRate: 16000, stream: who.stream, index: i, concealed, latencyMs: 0, packetStart: i % 2 === 0, packetMs: 40 };
      ch.emit('audio', f);
      await clock.advance(20);
    }
    return last;
  };
  /** The over ends and the floor is free again (in the session's order). */
  const finish = (who: TalkerInfo) => {
    ch.holder = null;
    const stats = { received: 0, lost: 0, late: 0, duplicates: 0, concealed: 0, played: 0, stretched: 0, delayMs: 0 };
    const report: OverReport = { ...who, reason: 'done', stats, durationMs: 0 };
    ch.emit('overEnd', report);
    ch.emit('floor', null);
  };
  /** Why each carrier was not forwarded, in order. */
  const ignored = () => logs.filter((l) => l.event === 'rx-ignored').map((l) => l.reason);
  const path = () => states.map((s) => s.to);
  return { clock, ptt, cos, input, output, ch, bridge, begin, play, finish, ignored, path, states };
}

t.test('a carrier is forwarded: idle → rx while it is open, → idle when it closes', async (t) => {
  const r = await rig(t);
  for (let i = 0; i < 5; i++) {
    r.input.block();
    await r.clock.advance(20);
  }
  r.cos.set(true);
  t.equal(r.bridge.state, 'rx', 'rx as the carrier opens');
  t.equal(r.ch.overs.length, 1, 'an over started on the channel');
  for (let i = 0; i < 10; i++) {
    r.input.block();
    await r.clock.advance(20);
  }
  const sent = r.ch.overs[0]!.packets;
  t.ok(sent >= 5, `200 ms of capture went out (${sent} packets of 40 ms)`);
  r.cos.set(false);
  t.equal(r.bridge.state, 'idle');
  t.equal(r.ch.overs[0]!.ended, 'done', 'the over ends as done');
  r.input.block();
  await r.clock.advance(20);
  t.equal(r.ch.overs[0]!.packets, sent, 'nothing is sent once the carrier has closed');
  t.same(r.path(), ['rx', 'idle']);
  t.equal(r.ptt.changes.length, 0, 'the transmitter is never keyed');
});

t.test('a carrier open longer than rxTimeoutSeconds: the over ends then, and is not forwarded again while it stays up', async (t) => {
  const r = await rig(t, { rxTimeoutSeconds: 5 });
  r.cos.set(true);
  await r.clock.advance(4999);
  t.equal(r.bridge.state, 'rx', 'still forwarded 1 ms before the rx time-out');
  await r.clock.advance(1);
  t.equal(r.bridge.state, 'idle', 'over at 5 s');
  t.equal(r.ch.overs[0]!.ended, 'timeout');
  await r.clock.advance(60_000);
  t.equal(r.ch.overs.length, 1, 'the stuck carrier is not forwarded again');
});

t.test('an over on the channel keys the radio; its end → hang; unkey and idle exactly hangMs later', async (t) => {
  const r = await rig(t, { txDelayMs: 60, hangMs: 500 });
  const a = talker();
  const t0 = r.clock.now();
  r.begin(a);
  t.equal(r.bridge.state, 'tx');
  t.same(r.ptt.changes, [{ at: t0, on: true }], 'keyed on the first audio');
  await r.play(a, 400);
  t.equal(r.output.writes[0]! - t0, 60, 'the first audio reaches the transmitter one TX delay after keying');
  const t1 = r.clock.now();
  r.finish(a);
  t.equal(r.bridge.state, 'hang', 'hang as the over ends');
  await r.clock.advance(499);
  t.ok(r.ptt.keyed, 'still keyed 1 ms before the hang time is over');
  t.equal(r.bridge.state, 'hang');
  await r.clock.advance(1);
  t.notOk(r.ptt.keyed, 'unkeyed');
  t.same(r.ptt.changes.at(-1), { at: t1 + 500, on: false }, 'exactly hangMs after the over ended');
  t.equal(r.bridge.state, 'idle');
  t.same(r.path(), ['tx', 'hang', 'idle']);
});

t.test('another over during the hang time goes out without re-keying', async (t) => {
  const r = await rig(t, { hangMs: 500 });
  const a = talker('A', 'a');
  const t0 = r.clock.now();
  r.begin(a);
  await r.play(a, 300);
  r.finish(a);
  await r.clock.advance(200);
  const b = talker('B', 'b');
  const tb = r.clock.now();
  r.begin(b);
  t.equal(r.bridge.state, 'tx', 'hang → tx');
  t.ok(r.ptt.keyed);
  const before = r.output.writes.length;
  await r.play(b, 200);
  t.equal(r.output.writes[before], tb, 'its audio goes out at once: the transmitter is already up, no TX delay');
  r.finish(b);
  const te = r.clock.now();
  await r.clock.advance(500);
  t.same(
    r.ptt.changes,
    [
      { at: t0, on: true },
      { at: te + 500, on: false },
    ],
    'keyed once for both overs, unkeyed one hang time after the second',
  );
  t.equal(r.ptt.keyCalls, 1, 'not keyed again for the second over');
  t.same(r.path(), ['tx', 'hang', 'tx', 'hang', 'idle']);
});

t.test('the time-out timer unkeys and locks out until the channels are quiet', async (t) => {
  const r = await rig(t, { timeoutSeconds: 2 });
  const a = talker();
  const t0 = r.clock.now();
  r.begin(a);
  // The talker goes on past the time-out, its audio arriving all along.
  await r.play(a, 3000);
  t.same(r.ptt.changes, [
    { at: t0, on: true },
    { at: t0 + 2000, on: false },
  ]);
  t.same(r.states.at(-1), { at: t0 + 2000, to: 'lockout' }, 'lockout from the moment of the time-out');
  t.same(r.ch.notices, ['timeout'], 'the channel is told');
  t.equal(r.bridge.counters.timeouts, 1);
  t.equal(r.bridge.counters.keyedSeconds, 2);
  t.equal(r.bridge.state, 'lockout', 'still locked out while the talker goes on');
  r.finish(a);
  t.equal(r.bridge.state, 'idle', 'idle as the floor is free');
  t.equal(r.ptt.keyCount, 1, 'never re-keyed');
  const b = talker('B', 'b');
  r.begin(b);
  t.equal(r.ptt.keyCount, 2, 'the next over keys again');
});

t.test('lockout: when the channels go quiet without a floor event, the 500 ms poll ends it', async (t) => {
  const r = await rig(t, { timeoutSeconds: 2 });
  const a = talker();
  const t0 = r.clock.now();
  r.begin(a);
  await r.play(a, 2600);
  t.equal(r.bridge.state, 'lockout');
  r.ch.holder = null;
  await r.clock.advance(1000);
  t.same(r.states.at(-1), { at: t0 + 3000, to: 'idle' }, 'idle at the first poll after the channel went quiet (every 500 ms from the time-out)');
});

t.test('starvation: no valid frame for starvationMs unkeys at once, without hang', async (t) => {
  const r = await rig(t, { starvationMs: 300, hangMs: 500 });
  const a = talker('A', 'a');
  r.begin(a);
  const last = await r.play(a, 1000);
  // Packets stop; playout goes on concealing, which is no audio.
  await r.play(a, 1000, true);
  const off = r.ptt.changes[1];
  t.ok(off && !off.on, 'unkeyed');
  t.ok(off!.at - last > 300 && off!.at - last <= 301, `unkeyed ${off!.at - last} ms after the last valid frame (starvationMs 300)`);
  t.equal(r.bridge.state, 'idle');
  t.same(r.path(), ['tx', 'idle'], 'straight to idle: no hang time');
  t.equal(r.bridge.counters.starvations, 1);
  // That talker's next over soon after is not transmitted; someone else's is.
  r.ch.holder = null;
  r.begin(talker('A', 'a'));
  t.equal(r.ptt.keyCount, 1, 'the starving talker does not key the radio again');
  r.ch.holder = null;
  r.begin(talker('B', 'b'));
  t.equal(r.ptt.keyCount, 2, 'another talker does');
});

t.test('a carrier is ignored while we transmit, in the hang time, and during the hold-off after we unkey', async (t) => {
  // No echo guard: only our own transmission and its hold-off stand in the way.
  const r = await rig(t, { echoGuardMs: 0, cosHoldoffMs: 250, hangMs: 500 });
  const a = talker();
  r.begin(a);
  await r.play(a, 200);
  r.cos.set(true);
  t.equal(r.bridge.state, 'tx', 'tx: not forwarded');
  r.cos.set(false);
  r.finish(a);
  r.cos.set(true);
  t.equal(r.bridge.state, 'hang', 'hang: not forwarded');
  r.cos.set(false);
  await r.clock.advance(500);
  t.notOk(r.ptt.keyed);
  const tu = r.ptt.changes.at(-1)!.at;
  await r.clock.advance(100);
  r.cos.set(true);
  t.equal(r.bridge.state, 'idle', '100 ms after unkeying: not forwarded');
  await r.clock.advance(100);
  r.cos.set(false);
  await r.clock.advance(tu + 250 - r.clock.now());
  r.cos.set(true);
  t.equal(r.bridge.state, 'rx', 'forwarded once the hold-off is over');
  t.same(r.ignored(), ['we are transmitting', 'we are transmitting', 'our own transmitter just unkeyed']);
  t.equal(r.ch.overs.length, 1, 'one over from the radio');
});

t.test('a carrier still up when the hold-off ends is forwarded then', async (t) => {
  const r = await rig(t, { echoGuardMs: 0, cosHoldoffMs: 250, hangMs: 0 });
  const a = talker();
  r.begin(a);
  await r.play(a, 200);
  r.finish(a);
  await r.clock.advance(0);
  const tu = r.ptt.changes.at(-1)!.at;
  r.cos.set(true);
  t.equal(r.bridge.state, 'idle', 'not forwarded during the hold-off');
  await r.clock.advance(tu + 300 - r.clock.now());
  t.same(r.states.at(-1), { at: tu + 255, to: 'rx' }, 'forwarded just after the hold-off: someone else is on the frequency');
});

t.test('a carrier while the channel is busy, or just after an over ended there, is not forwarded', async (t) => {
  // The channel only takes the radio's overs: its talker is not transmitted, so the radio is idle.
  const r = await rig(t, { echoGuardMs: 1500 }, { monitor: false });
  const a = talker();
  r.ch.holder = a;
  r.ch.emit('floor', a);
  r.cos.set(true);
  t.equal(r.bridge.state, 'idle', 'not forwarded while Base talks');
  r.cos.set(false);
  r.finish(a);
  const te = r.clock.now();
  await r.clock.advance(1000);
  r.cos.set(true);
  t.equal(r.bridge.state, 'idle', 'not forwarded 1 s after the over ended (echo guard)');
  r.cos.set(false);
  await r.clock.advance(te + 1500 - r.clock.now());
  r.cos.set(true);
  t.equal(r.bridge.state, 'rx', 'forwarded once the echo guard is over');
  t.same(r.ignored(), ['channel busy: Base is talking', 'an over just ended on the channel (echo guard)']);
  t.equal(r.ptt.changes.length, 0, 'never keyed');
});

t.test('stop() while keyed unkeys and leaves no timer behind', async (t) => {
  const r = await rig(t);
  const a = talker();
  r.begin(a);
  await r.play(a, 200);
  t.ok(r.ptt.keyed);
  const ptt: Array<[boolean, string]> = [];
  r.bridge.on('ptt', (on, why) => ptt.push([on, why]));
  await r.bridge.stop();
  t.notOk(r.ptt.keyed, 'unkeyed');
  t.ok(r.ptt.closed, 'and the PTT released');
  t.same(ptt, [[false, 'stopping']], 'PTT off reported with its reason');
  t.equal(r.clock.pending, 0, 'no timer left');
  const written = r.output.writes.length;
  await r.play(a, 1000);
  await r.clock.advance(10_000);
  t.equal(r.ptt.keyCount, 1, 'nothing keys it again');
  t.equal(r.output.writes.length, written, 'nothing more reaches the transmitter');
});

t.test('stop() after an over ended within the TX delay: no timer left, no retry loop', async (t) => {
  const r = await rig(t, { txDelayMs: 60 });
  const a = talker();
  r.begin(a);
  // Two frames, both still held for the TX delay, and the over is over.
  await r.play(a, 40);
  r.finish(a);
  t.equal(r.output.writes.length, 0, 'its audio is still held for the TX delay');
  await r.bridge.stop();
  t.notOk(r.ptt.keyed, 'unkeyed');
  t.equal(r.clock.pending, 0, 'no timer left');
  const changes = r.ptt.changes.length;
  await r.clock.advance(1000);
  t.equal(r.clock.pending, 0, 'nothing re-arms itself');
  t.equal(r.ptt.changes.length, changes, 'nothing touches the PTT again');
  t.equal(r.output.writes.length, 0, 'nothing reaches the transmitter');
});

t.test('an over aborted within the TX delay: the next over still waits its own TX delay', async (t) => {
  const r = await rig(t, { txDelayMs: 60 });
  const keyedAt = () => r.ptt.changes.filter((c) => c.on).at(-1)!.at;

  // The radio fails to key: the over is dropped with its first frame still held.
  r.ptt.failNextKey = true;
  const a = talker('A', 'a');
  r.begin(a);
  await r.play(a, 20);
  t.equal(r.bridge.state, 'idle', 'dropped: cannot key');
  t.equal(r.output.writes.length, 0, 'none of it was transmitted');
  r.finish(a);
  const b = talker('B', 'b');
  r.begin(b);
  t.ok(r.ptt.keyed, 'the next over keys');
  await r.play(b, 200);
  t.equal(r.output.writes[0]! - keyedAt(), 60, 'its first audio goes out one TX delay after its own key');
  r.finish(b);
  await r.clock.advance(1000);

  // A PTT fault while the first frame is held: the same.
  const c = talker('C', 'c');
  r.begin(c);
  await r.play(c, 20);
  r.ptt.emit('fault', new Error('relay dropped out'), true);
  t.equal(r.bridge.state, 'idle', 'dropped: PTT fault');
  r.finish(c);
  const written = r.output.writes.length;
  const d = talker('D', 'd');
  r.begin(d);
  await r.play(d, 200);
  t.equal(r.output.writes[written]! - keyedAt(), 60, 'the next over: one TX delay after its own key');
});

t.test('a carrier cut by the rx time-out is not forwarded again after our own over, until it closes', async (t) => {
  // No echo guard: only our own transmission and its hold-off stand in the way. "preempt": the
  // channel's over goes out although the radio hears the stuck carrier.
  const r = await rig(t, { rxTimeoutSeconds: 5, busyPolicy: 'preempt', echoGuardMs: 0, cosHoldoffMs: 250, hangMs: 500 });
  r.cos.set(true);
  await r.clock.advance(5000);
  t.equal(r.ch.overs[0]!.ended, 'timeout', 'the rx time-out cut it');
  const a = talker();
  r.begin(a);
  t.equal(r.bridge.state, 'tx', 'an over from the channel is transmitted');
  await r.play(a, 200);
  r.finish(a);
  await r.clock.advance(500);
  t.notOk(r.ptt.keyed, 'unkeyed after the hang time');
  await r.clock.advance(1000);
  t.ok(r.cos.carrier, 'the carrier is still open');
  t.equal(r.bridge.state, 'idle', 'once the hold-off is over: not forwarded');
  t.equal(r.ch.overs.length, 1, 'no second over from the stuck carrier');
  t.equal(r.ignored().at(-1), 'carrier open since the rx time-out (stuck squelch?)', 'the reason is logged');
  r.cos.set(false);
  r.cos.set(true);
  t.equal(r.bridge.state, 'rx', 'a carrier that has closed and opened again is forwarded');
  t.equal(r.ch.overs.length, 2);
});
