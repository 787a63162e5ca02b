/**
 * AlsaPlayback.drain() against a fake aplay that behaves like the real one on a card: it reads
 * stdin a period at a time, starts the card once a whole buffer is written (aplay's default start
 * threshold), plays in real time, re-prepares after an underrun, and logs when each run's last
 * sample left the card. The PTT may drop only after that moment, and not much later.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { AlsaPlayback, CLOCK_PPM, DRAIN_MARGIN_MS, OPEN_MS } from '../../gateway/src/radio/audio/alsa.js';
import { sine } from '../helpers/audio.js';
import { readOr, sleep, tempDir, waitFor, writeExe } from './helpers.js';

const DEVICE = 'plughw:CARD=Device,DEV=0';
// The interpreter itself, not a version manager's shim (which takes ~150 ms to start): aplay starts in a few ms.
const PY = `${spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim()} -S`;

function fakeCardAplay(dir: string): { runs: () => Array<{ start: number; end: number; frames: number; sound: number }> } {
  const bin = path.join(dir, 'bin');
  const log = path.join(dir, 'card.log');
  writeFileSync(log, '');
  writeExe(
    bin,
    'aplay',
    `#!${PY}
import os, select, sys, time
a = sys.argv[1:]
rate = int(a[a.index('-r') + 1])
opt = lambda k: int(next(x for x in a if x.startswith(k + '=')).split('=')[1])
period, buffer = opt('--period-size'), opt('--buffer-size')
log = open(${JSON.stringify(log)}, 'a', buffering=1)
started, frames, buf, sound = None, 0, b'', 0
def end(): return started + frames / rate
def ran_dry():
    global started, frames, sound
    log.write('%.3f %.3f %d %.3f\\n' % (started * 1000, end() * 1000, frames, (started + sound / rate) * 1000))
    started, frames, sound = None, 0, 0
while True:
    r, _, _ = select.select([0], [], [], None if started is None else max(0, end() - time.time()))
    if not r:
        ran_dry()
        continue
    d = os.read(0, 65536)
    if not d:
        if frames and started is None: started = time.time()
        if started is not None:
            time.sleep(max(0, end() - time.time()))
            ran_dry()
        break
    buf += d
    while len(buf) >= period * 2:
        chunk, buf = buf[:period * 2], buf[period * 2:]
        now = time.time()
        if started is not None and now > end(): ran_dry()
        nz = chunk.rstrip(b'\\0')
        if nz: sound = frames + (len(nz) + 1) // 2
        frames += period
        if started is None and frames >= buffer: started = now
`,
  );
  process.env.PATH = `${bin}:${process.env.PATH}`;
  return {
    runs: () =>
      readOr(log)
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [start, end, frames, sound] = l.split(' ').map(Number) as [number, number, number, number];
          return { start, end, frames, sound };
        }),
  };
}

/** Writes `ms` of audio in 20 ms blocks at real-time pace (a playout), after an optional backlog. */
async function over(pb: AlsaPlayback, rate: number, ms: number, backlogMs = 0): Promise<void> {
  const block = rate / 50;
  const tone = sine(600, rate, ms / 1000, 0.3);
  let pos = 0;
  const t0 = performance.now();
  for (; pos < Math.min(tone.length, (backlogMs * rate) / 1000); pos += block) pb.write(tone.subarray(pos, pos + block));
  let n = 0;
  while (pos < tone.length) {
    const due = t0 + n * 20 - performance.now();
    if (due > 0) await sleep(due);
    pb.write(tone.subarray(pos, pos + block));
    pos += block;
    n++;
  }
}

async function measure(t: Test, name: string, rate: number, run: (pb: AlsaPlayback) => Promise<void>, slackMs = 0) {
  const dir = tempDir(t);
  const fake = fakeCardAplay(dir);
  const pb = new AlsaPlayback({ device: DEVICE, sampleRate: rate, idleCloseMs: 5000 });
  await run(pb);
  const before = fake.runs().length;
  const queued = pb.queuedMs;
  const t0 = Date.now();
  await pb.drain();
  const unkey = Date.now();
  await waitFor(() => fake.runs().length > before, 3000, `${name}: the card ran dry`);
  const last = fake.runs().at(-1)!;
  await pb.close();
  const after = unkey - last.sound;
  const allowed = DRAIN_MARGIN_MS + ((last.sound - last.start) * CLOCK_PPM) / 1e6 + 6 + slackMs;
  t.ok(after >= 0, `${name}: unkeyed ${after.toFixed(1)} ms after the last sample left the card (never before)`);
  t.ok(after <= allowed, `${name}: within ${allowed.toFixed(1)} ms of it (queued ${queued.toFixed(1)} ms at drain, waited ${unkey - t0} ms)`);
  return { after, waited: unkey - t0, queued };
}

t.test('drain waits for what is queued, never less', async (t) => {
  // The bridge's default: aplay spawned at key, 60 ms of TX-delay backlog written at once, then a playout.
  await measure(t, 'prepared, 60 ms backlog, 1 s over', 48000, async (pb) => {
    pb.prepare();
    await sleep(60);
    await over(pb, 48000, 1000, 60);
  });
  // TX delay 0: the card's start threshold (one buffer, 80 ms) is latency that is really queued.
  await measure(t, 'prepared, no backlog', 48000, async (pb) => {
    pb.prepare();
    await over(pb, 48000, 600);
  });
  // Spawned on the first audio (no prepare): the card starts once aplay has opened it, which is
  // assumed to take up to OPEN_MS (this fake takes a few ms).
  await measure(
    t,
    'spawned on the first write',
    16000,
    async (pb) => {
      await over(pb, 16000, 500, 60);
    },
    OPEN_MS,
  );
  // An over shorter than the card's buffer would never start the card: drain pushes it out.
  await measure(t, 'a 40 ms over', 48000, async (pb) => {
    pb.prepare();
    await sleep(60);
    await over(pb, 48000, 40, 40);
  });
  // A courtesy tone that ends mid-period: aplay would hold the rest of the period back.
  await measure(t, 'over + 33 ms tone', 48000, async (pb) => {
    pb.prepare();
    await sleep(60);
    await over(pb, 48000, 400, 60);
    pb.write(sine(1200, 48000, 0.033, 0.3));
  });
  // The sender stalls 200 ms mid-over: the card runs dry and restarts once its buffer is full again.
  await measure(t, 'underrun mid-over', 48000, async (pb) => {
    pb.prepare();
    await sleep(60);
    await over(pb, 48000, 300, 60);
    await sleep(200);
    await over(pb, 48000, 300);
  });
});
