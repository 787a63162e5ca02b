/**
 * Push-to-talk on the real ChannelSession over an in-memory broker: every way an over can end
 * publishes END and frees the floor, so the page can never leave the channel stuck.
 */
import t, { type Test } from 'tap';
import { ChannelSession, type PubSub } from '../../gateway/shared/channel/session.js';
import { Flag, decodePacket } from '../../gateway/shared/channel/packet.js';
import { parseControl } from '../../gateway/shared/channel/control.js';
import { OPUS_DEFAULTS } from '../../gateway/shared/codec/codec.js';
import { loadOpusWasm } from '../../gateway/src/codec/opus-node.js';
import { Talker, TalkerError, type TalkState, type TalkerDeps } from '../../gateway/web/src/talker.js';
import type { OutEncoder } from '../../gateway/web/src/codec.js';
import { CODEC } from '../../gateway/web/src/config.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function matches(pattern: string, topic: string): boolean {
  const p = pattern.split('/');
  const s = topic.split('/');
  if (p.length !== s.length) return false;
  return p.every((x, i) => x === '+' || x === s[i]);
}

/** Just enough MQTT: wildcard '+', retained messages, connection loss. */
class Broker {
  clients = new Set<Client>();
  retained = new Map<string, Uint8Array>();
  log: Array<{ from: Client; topic: string; payload: Uint8Array }> = [];
  publish(from: Client, topic: string, payload: Uint8Array, retain: boolean) {
    this.log.push({ from, topic, payload });
    if (retain) {
      if (payload.length) this.retained.set(topic, payload);
      else this.retained.delete(topic);
    }
    for (const c of this.clients) if (c.connected && [...c.subs].some((p) => matches(p, topic))) queueMicrotask(() => c.deliver(topic, payload));
  }
}

class Client implements PubSub {
  connected = true;
  subs = new Set<string>();
  private handlers = new Map<string, Set<(...a: never[]) => void>>();
  constructor(private readonly b: Broker) {
    b.clients.add(this);
  }
  publish(topic: string, payload: Uint8Array | string, opts: { qos: 0 | 1; retain: boolean }, cb?: (err?: Error) => void) {
    const p = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    if (this.connected) this.b.publish(this, topic, p, opts.retain);
    cb?.();
  }
  subscribe(topic: string, _o: { qos: 0 | 1 }, cb?: (err: Error | null) => void) {
    this.subs.add(topic);
    for (const [k, v] of this.b.retained) if (matches(topic, k)) queueMicrotask(() => this.deliver(k, v));
    cb?.(null);
  }
  unsubscribe(topic: string, cb?: () => void) {
    this.subs.delete(topic);
    cb?.();
  }
  on(event: string, fn: (...a: never[]) => void) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(fn);
    return this;
  }
  removeListener(event: string, fn: (...a: never[]) => void) {
    this.handlers.get(event)?.delete(fn);
    return this;
  }
  deliver(topic: string, payload: Uint8Array) {
    for (const fn of this.handlers.get('message') ?? []) (fn as (t: string, p: Uint8Array) => void)(topic, payload);
  }
}

/** A fake encoder: synchronous like WASM, or holding frames until flush like a slow WebCodecs. */
class FakeEncoder implements OutEncoder {
  readonly backend = 'fake';
  onFrame: (f: Uint8Array) => void = () => {};
  onError: (e: Error) => void = () => {};
  held: Uint8Array[] = [];
  closed = false;
  constructor(private readonly o: { hold?: boolean; hangFlush?: boolean; throwOn?: number } = {}) {}
  n = 0;
  encode(pcm: Int16Array) {
    if (this.o.throwOn !== undefined && this.n === this.o.throwOn) throw new Error('encoder broke');
    const f = Uint8Array.of(0xf8, this.n++ & 0xff, pcm.length & 0xff);
    if (this.o.hold) this.held.push(f);
    else this.onFrame(f);
  }
  flush() {
    if (this.o.hangFlush) return new Promise<void>(() => {});
    for (const f of this.held.splice(0)) this.onFrame(f);
    return Promise.resolve();
  }
  close() {
    this.closed = true;
  }
}

async function world(t: Test, o: { enc?: ConstructorParameters<typeof FakeEncoder>[0]; openMic?: () => Promise<void>; timeoutMs?: number } = {}) {
  const wasm = await loadOpusWasm();
  const broker = new Broker();
  const mk = (sender: string, name: string) => {
    const c = new Client(broker);
    const s = new ChannelSession(c, { prefix: 'talkbridge/v1', channel: 'base', sender, name, source: sender === 'web' ? 'web' : 'cli', silenceMs: 1000, createDecoder: (x) => wasm.createDecoder(x) });
    t.teardown(() => s.leave());
    return { c, s };
  };
  const web = mk('web', 'Ann');
  const other = mk('radio', 'Base');
  await web.s.join();
  await other.s.join();
  let armed = false;
  const encoders: FakeEncoder[] = [];
  let lastFrame: Int16Array | null = null;
  const talker: Talker = new Talker({
    session: web.s,
    openMic: o.openMic ?? (async () => {}),
    arm: () => (armed = true),
    disarm: async () => {
      // The worklet hands over its partial last frame before it confirms.
      if (armed) talker.frame(new Int16Array(320).fill(1));
      armed = false;
    },
    createEncoder: () => {
      const e = new FakeEncoder(o.enc);
      encoders.push(e);
      return e;
    },
    silence: () => Uint8Array.of(0xf8, 0xff, 0xfe),
    connected: () => web.c.connected,
    codec: CODEC,
    talkTimeoutMs: o.timeoutMs ?? 120000,
    flushTimeoutMs: 100,
  } satisfies TalkerDeps);
  const states: TalkState['kind'][] = [];
  talker.on('state', (s) => states.push(s.kind));
  const feed = (n: number) => {
    for (let i = 0; i < n; i++) talker.frame((lastFrame = new Int16Array(320)));
  };
  const fromWeb = () => broker.log.filter((m) => m.from === web.c && !m.topic.includes('/presence/'));
  const controls = () =>
    fromWeb()
      .filter((m) => m.topic.includes('/control/'))
      .map((m) => parseControl(m.payload))
      .map((p) => (p.ok ? p.value : null));
  const audio = () =>
    fromWeb()
      .filter((m) => m.topic.includes('/audio/'))
      .map((m) => decodePacket(m.payload));
  void lastFrame;
  return { broker, web, other, talker, states, feed, controls, audio, encoders, isArmed: () => armed };
}

t.test('press, talk, release: START, packets of two frames, the last flagged END, then END done', async (t) => {
  const w = await world(t);
  await w.talker.press();
  t.equal(w.talker.state.kind, 'talking');
  t.ok(w.isArmed(), 'capture armed');
  t.equal(w.web.s.holder?.self, true, 'we hold the floor');
  w.feed(4);
  w.talker.release();
  await sleep(20);
  const c = w.controls();
  t.same(
    c.map((m) => m?.type),
    ['start', 'end'],
  );
  t.match(c[1], { reason: 'done', packets: 3 });
  const a = w.audio();
  t.same(
    a.map((p) => p.seq),
    [0, 1, 2],
  );
  t.ok(a.every((p) => p.frameCount === 2));
  t.equal(a[0]!.flags & Flag.START, Flag.START);
  t.equal(a[2]!.flags & Flag.END, Flag.END, 'last packet carries END');
  t.same([...a[2]!.frames[1]!], [0xf8, 0xff, 0xfe], 'odd frame count padded with encoded silence');
  t.equal(w.web.s.holder, null, 'floor free');
  // The others play out what they buffered (6 frames) before they end the over.
  for (let i = 0; i < 50 && w.other.s.holder; i++) await sleep(20);
  t.equal(w.other.s.holder, null, 'and free for the others too');
  t.same(w.states, ['starting', 'talking', 'idle']);
  t.ok(w.encoders[0]!.closed);
});

t.test('a long over keeps the floor past the silence time-out (the page shows "you are talking")', async (t) => {
  const w = await world(t);
  await w.talker.press();
  for (let i = 0; i < 8; i++) {
    w.feed(10);
    await sleep(200);
  }
  t.equal(w.web.s.holder?.self, true, 'still our floor after 1.6 s');
  t.equal(w.other.s.holder?.name, 'Ann', 'and the others still hear us');
  w.talker.release();
  await sleep(20);
  t.equal(w.web.s.holder, null);
});

t.test('an asynchronous encoder (WebCodecs) hands over its last frames at release', async (t) => {
  const w = await world(t, { enc: { hold: true } });
  await w.talker.press();
  w.feed(4);
  t.equal(w.audio().length, 0, 'nothing out yet');
  w.talker.release();
  await sleep(20);
  t.same(
    w.audio().map((p) => p.seq),
    [0, 1, 2],
    '4 frames + the partial one + silence',
  );
  t.match(w.controls()[1], { type: 'end', reason: 'done', packets: 3 });
});

t.test('an encoder flush that never finishes still ends the over', async (t) => {
  const w = await world(t, { enc: { hold: true, hangFlush: true } });
  await w.talker.press();
  w.feed(4);
  w.talker.release();
  await sleep(250);
  t.match(w.controls()[1], { type: 'end', reason: 'done' });
  t.equal(w.web.s.holder, null);
});

t.test('busy: pressing while someone else talks is refused and publishes nothing', async (t) => {
  const w = await world(t);
  const over = w.other.s.talk({ sampleRate: 16000, frameMs: 20, framesPerPacket: 2 });
  if ('busy' in over) throw new Error('unexpected');
  await sleep(10);
  t.equal(w.web.s.holder?.name, 'Base');
  await w.talker.press();
  t.equal(w.talker.state.kind, 'refused');
  w.feed(4);
  w.talker.release();
  t.equal(w.talker.state.kind, 'idle');
  t.same(w.controls(), [], 'no START, no END');
  t.same(w.audio(), []);
  over.end('done');
  await sleep(10);
  await w.talker.press();
  t.equal(w.talker.state.kind, 'talking', 'free again: talking works');
  w.talker.release();
});

t.test('losing the floor to a better claim stops the over and says busy', async (t) => {
  const w = await world(t);
  await w.talker.press();
  w.feed(2);
  // A radio that keyed up at the same moment, with a higher priority, before it could hear us.
  const start = { v: 1, type: 'start', stream: 'aaaaaaaaaaaaaaaa', t: Date.now() - 5, name: 'Base', source: 'radio', priority: 5, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 };
  w.other.c.publish('talkbridge/v1/base/control/radio', JSON.stringify(start), { qos: 1, retain: false });
  await sleep(10);
  t.equal(w.talker.state.kind, 'refused');
  t.match(w.controls().at(-1), { type: 'end', reason: 'busy' });
  w.feed(4);
  t.equal(w.audio().length, 1, 'nothing more sent');
  w.talker.release();
  t.equal(w.talker.state.kind, 'idle');
});

t.test('talk time-out ends the over like a radio TOT and waits for release', async (t) => {
  const w = await world(t, { timeoutMs: 80 });
  await w.talker.press();
  w.feed(3);
  await sleep(150);
  t.equal(w.talker.state.kind, 'timeout');
  t.match(w.controls().at(-1), { type: 'end', reason: 'timeout', packets: 2 });
  t.equal(w.web.s.holder, null);
  w.feed(4);
  t.equal(w.audio().length, 2, 'holding on sends nothing more');
  w.talker.release();
  t.equal(w.talker.state.kind, 'idle');
  await w.talker.press();
  t.equal(w.talker.state.kind, 'talking', 'a new press starts a new over');
  w.talker.release();
});

t.test('broker lost mid-over: END aborted at once, failed until release', async (t) => {
  const w = await world(t);
  await w.talker.press();
  w.feed(2);
  w.talker.abort('offline');
  t.equal(w.talker.state.kind, 'failed');
  t.match(w.controls().at(-1), { type: 'end', reason: 'aborted' });
  t.equal(w.web.s.holder, null);
  w.talker.release();
  t.equal(w.talker.state.kind, 'idle');
  w.web.c.connected = false;
  await w.talker.press();
  t.match(w.talker.state, { kind: 'failed', reason: 'offline' }, 'cannot start while offline');
  w.talker.release();
});

t.test('an encoder that throws ends the over with error', async (t) => {
  const w = await world(t, { enc: { throwOn: 3 } });
  await w.talker.press();
  w.feed(5);
  t.match(w.talker.state, { kind: 'failed', reason: 'encoder' });
  t.match(w.controls().at(-1), { type: 'end', reason: 'error' });
  t.equal(w.web.s.holder, null);
  w.talker.release();
});

t.test('microphone refused: failed state, nothing published; released during the prompt: nothing said', async (t) => {
  let allow: () => void = () => {};
  let mode: 'deny' | 'slow' = 'deny';
  // Like AudioEngine.openMic: concurrent calls share one prompt.
  let pending: Promise<void> | null = null;
  const w = await world(t, {
    openMic: () => (mode === 'deny' ? Promise.reject(new TalkerError('mic-denied', 'microphone permission denied')) : (pending ??= new Promise<void>((r) => (allow = () => ((pending = null), r()))))),
  });
  await w.talker.press();
  t.match(w.talker.state, { kind: 'failed', reason: 'mic-denied' });
  w.talker.release();
  mode = 'slow';
  const p = w.talker.press();
  await sleep(0);
  t.equal(w.talker.state.kind, 'starting');
  w.talker.release();
  allow();
  await p;
  t.equal(w.talker.state.kind, 'idle');
  t.same(w.controls(), []);
  // Press, release, press again while the first prompt is still open: only the second talks.
  const p1 = w.talker.press();
  w.talker.release();
  const p2 = w.talker.press();
  await sleep(0);
  allow();
  await Promise.all([p1, p2]);
  t.equal(w.talker.state.kind, 'talking');
  t.equal(w.controls().length, 1, 'one START');
  w.talker.release();
  await sleep(20);
  t.equal(w.web.s.holder, null);
});

t.test('hidden page: the over ends and the button is released', async (t) => {
  const w = await world(t);
  await w.talker.press();
  w.talker.abort('hidden');
  t.equal(w.talker.state.kind, 'idle');
  t.equal(w.talker.isPressed, false);
  t.match(w.controls().at(-1), { type: 'end', reason: 'aborted' });
});

t.test('the codec defaults give 20 ms frames the real Opus decoder accepts', async (t) => {
  t.equal(CODEC.sampleRate, OPUS_DEFAULTS.sampleRate);
  t.equal(CODEC.frameMs, OPUS_DEFAULTS.frameMs);
});
