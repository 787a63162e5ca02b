import t from 'tap';
import { JITTER_DEFAULTS, JitterBuffer, JitterEstimator, type PlayoutItem } from '../../gateway/shared/channel/jitter.js';

const frameMs = 20;
const opts = { ...JITTER_DEFAULTS, frameMs };
const frame = (i: number) => Uint8Array.of(i & 0xff, (i >> 8) & 0xff);
const pkt = (seq: number, fpp = 1, last = false) => ({ seq, frames: Array.from({ length: fpp }, (_, i) => frame(seq * fpp + i)), last });

/** Runs the playout clock from `from` to `to` ms, collecting every item at its due time. */
function drain(jb: JitterBuffer, from: number, to: number): Array<PlayoutItem & { at: number }> {
  const out: Array<PlayoutItem & { at: number }> = [];
  for (let now = from; now <= to; now++) {
    for (let it = jb.pop(now); it; it = jb.pop(now)) {
      out.push({ ...it, at: now });
      if (it.type === 'end') return out;
    }
  }
  return out;
}

t.test('in-order packets play in order, each at its due time, then end', async (t) => {
  const jb = new JitterBuffer(opts);
  for (let s = 0; s < 10; s++) jb.push(pkt(s, 1, s === 9), 1000 + s * 20);
  const items = drain(jb, 1000, 2000);
  const frames = items.filter((i) => i.type === 'frame');
  t.same(
    frames.map((f) => (f as { index: number }).index),
    [...Array(10).keys()],
  );
  t.equal(items.at(-1)!.type, 'end');
  // Delay starts small: the first frame plays minDelay after it arrived.
  t.equal(items[0]!.at, 1000 + opts.minDelayMs);
  for (let i = 1; i < frames.length; i++) t.equal(frames[i]!.at - frames[i - 1]!.at, frameMs);
  t.match(jb.stats(true), { received: 10, lost: 0, late: 0, duplicates: 0, concealed: 0, played: 10 });
});

t.test('reordered packets inside the delay are put back in order', async (t) => {
  const jb = new JitterBuffer({ ...opts, minDelayMs: 40 });
  const order = [0, 2, 1, 4, 3, 5];
  order.forEach((s, i) => jb.push(pkt(s, 1, s === 5), 1000 + i * 20));
  const frames = drain(jb, 1000, 2000).filter((i) => i.type === 'frame');
  t.same(
    frames.map((f) => (f as { index: number }).index),
    [0, 1, 2, 3, 4, 5],
  );
  t.equal(jb.stats(true).late, 0);
});

t.test('duplicates are dropped and counted', async (t) => {
  const jb = new JitterBuffer(opts);
  t.equal(jb.push(pkt(0), 1000), 'queued');
  t.equal(jb.push(pkt(0), 1001), 'duplicate');
  t.equal(jb.push(pkt(1, 1, true), 1020), 'queued');
  t.equal(jb.push(pkt(1, 1, true), 1021), 'duplicate');
  const frames = drain(jb, 1000, 2000).filter((i) => i.type === 'frame');
  t.equal(frames.length, 2);
  t.equal(jb.stats(true).duplicates, 2);
});

t.test('a lost packet is concealed, counted lost, and playout keeps its pace', async (t) => {
  const jb = new JitterBuffer(opts);
  for (const s of [0, 1, 3, 4]) jb.push(pkt(s, 2, s === 4), 1000 + s * 40);
  const items = drain(jb, 1000, 3000);
  t.same(
    items.filter((i) => i.type !== 'end').map((i) => `${i.type}:${(i as { index: number }).index}`),
    ['frame:0', 'frame:1', 'frame:2', 'frame:3', 'conceal:4', 'conceal:5', 'frame:6', 'frame:7', 'frame:8', 'frame:9'],
  );
  t.match(jb.stats(true), { received: 4, lost: 1, concealed: 2 });
});

t.test('a packet arriving after its due time is never played', async (t) => {
  const jb = new JitterBuffer(opts);
  jb.push(pkt(0), 1000);
  jb.push(pkt(2, 1, true), 1040);
  const early = drain(jb, 1000, 1035); // frames 0 and 1 (concealed) are due by 1030
  t.same(
    early.map((i) => i.type),
    ['frame', 'conceal'],
  );
  t.equal(jb.push(pkt(1), 1036), 'late', 'frame 1 was concealed at its due time');
  const rest = drain(jb, 1036, 2000);
  t.same(
    rest.map((i) => i.type),
    ['frame', 'end'],
  );
  t.notOk(
    rest.some((i) => i.type === 'frame' && i.index === 1),
    'the late frame never plays',
  );
  t.match(jb.stats(true), { late: 1, lost: 0, concealed: 1 });
});

t.test('the delay grows with measured jitter, up to the cap', async (t) => {
  const est = new JitterEstimator();
  const jb = new JitterBuffer({ ...opts, maxDelayMs: 100 }, est);
  // Every fourth packet arrives 60 ms late; the playout clock runs every millisecond.
  const arrivals = Array.from({ length: 200 }, (_, s) => ({ s, at: 1000 + s * 20 + (s % 4 === 3 ? 60 : 0) }));
  const lateAt: number[] = [];
  let ended = false;
  for (let now = 1000; now < 6000 && !ended; now++) {
    for (const a of arrivals) if (a.at === now && jb.push(pkt(a.s, 1, a.s === 199), now) === 'late') lateAt.push(a.s);
    for (let it = jb.pop(now); it && !ended; it = jb.pop(now)) if (it.type === 'end') ended = true;
  }
  const s = jb.stats(true);
  t.ok(ended, 'the over ended');
  t.ok(est.peak >= 60, `estimator saw the 60 ms bursts (peak ${est.peak})`);
  t.ok(s.delayMs >= 60 && s.delayMs <= 100, `delay grew to cover the jitter, within the cap (${s.delayMs} ms)`);
  t.ok(s.stretched > 0, `grew by stretching (${s.stretched} frames)`);
  t.ok(lateAt.length > 0 && lateAt.length <= 3, `only the first bursts were late (${lateAt.join(',')})`);
  t.ok(
    lateAt.every((x) => x < 20),
    'none late once the delay covered the jitter',
  );

  // Jitter far beyond the cap: the buffer grows to the cap and no further.
  const capped = new JitterBuffer({ ...opts, maxDelayMs: 50 }, new JitterEstimator());
  const burst = Array.from({ length: 100 }, (_, s) => ({ s, at: 1000 + s * 20 + (s % 5 === 4 ? 400 : 0) }));
  for (let now = 1000; now < 4000; now++) {
    for (const a of burst) if (a.at === now) capped.push(pkt(a.s), now);
    for (let it = capped.pop(now); it; it = capped.pop(now));
  }
  const c = capped.stats(true);
  t.ok(c.delayMs > opts.minDelayMs && c.delayMs <= 50, `grew, but never beyond maxDelayMs (${c.delayMs})`);
});

t.test('the next over starts with the delay the estimator learned', async (t) => {
  const est = new JitterEstimator();
  const first = new JitterBuffer(opts, est);
  for (let s = 0; s < 20; s++) first.push(pkt(s), 1000 + s * 20 + (s % 2 ? 30 : 0));
  const second = new JitterBuffer(opts, est);
  second.push(pkt(0), 5000);
  t.ok(second.nextDue()! - 5000 >= 30, `second over starts with ≥ 30 ms (${second.nextDue()! - 5000})`);
});

t.test('a hostile sequence jump is refused, not buffered', async (t) => {
  const jb = new JitterBuffer(opts);
  jb.push(pkt(0), 1000);
  t.equal(jb.push(pkt(0xffffffff), 1001), 'too-far');
  t.equal(jb.buffered, 1);
});

t.test('joining late counts loss from the first packet heard; END fixes the total', async (t) => {
  const jb = new JitterBuffer(opts);
  for (let s = 50; s < 60; s++) jb.push(pkt(s), 1000 + (s - 50) * 20);
  jb.endAfter(62, 1);
  const items = drain(jb, 1000, 3000);
  t.equal(items.at(-1)!.type, 'end');
  t.match(jb.stats(false, 62), { received: 10, lost: 2 });
  t.match(jb.stats(true, 62), { received: 10, lost: 52 });
});

t.test('a frame already here may be taken up to `ahead` early; a missing one is concealed only when due', async (t) => {
  const jb = new JitterBuffer(opts);
  // Two frames per packet: packet 0 (frames 0, 1) arrives; packet 1 (frames 2, 3) never does.
  jb.push(pkt(0, 2), 1000);
  const due0 = jb.nextDue()!;
  t.equal(jb.pop(due0 - 1), null, 'without ahead, nothing before its due time');
  t.match(jb.pop(due0), { type: 'frame', index: 0 });
  t.match(jb.pop(due0, 20), { type: 'frame', index: 1 }, 'with ahead, the rest of the packet goes with it');
  t.equal(jb.pop(due0, 20), null, 'frame 2 is not here: no concealment 20 ms early');
  t.equal(jb.pop(due0 + 39, 20), null);
  t.match(jb.pop(due0 + 40, 20), { type: 'conceal', index: 2 }, 'concealed at its due time');
  t.match(jb.stats(true), { played: 2, concealed: 1 });
});

t.test('one late packet on a quiet path: its in-time frame plays and the delay does not grow for the rest of the over', async (t) => {
  // Loopback: 40 ms packets of two 20 ms frames, on time to the millisecond, except packet 10,
  // held up 25 ms (a GC pause at the sender). Its first frame is past due when it comes, its second
  // is not.
  const jb = new JitterBuffer(opts);
  const items: Array<PlayoutItem & { at: number }> = [];
  const arrivals = new Map<number, number>();
  for (let s = 0; s < 30; s++) arrivals.set(1040 + s * 40 + (s === 10 ? 25 : 0), s);
  for (let now = 1000; now <= 2400 && items.at(-1)?.type !== 'end'; now++) {
    const s = arrivals.get(now);
    if (s !== undefined) jb.push(pkt(s, 2, s === 29), now);
    for (let it = jb.pop(now); it; it = it.type === 'end' ? null : jb.pop(now)) items.push({ ...it, at: now });
  }
  const stats = jb.stats(true);
  t.equal(stats.concealed, 1, 'only the frame that really was late is concealed');
  t.equal(stats.stretched, 0, 'the buffer did not grow for a frame that had come');
  t.equal(stats.delayMs, opts.minDelayMs, `delay still ${stats.delayMs} ms at the end of the over`);
  t.equal(stats.received, 30, 'the late packet counts as received: half of it played');
  const played = items.filter((i) => i.type === 'frame').map((i) => (i as { index: number }).index);
  t.ok(played.includes(21) && !played.includes(20), 'frame 21 played, frame 20 concealed');
  t.equal(items.at(-1)!.type, 'end');
});
