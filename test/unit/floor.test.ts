import t from 'tap';
import { type Claim, Floor, beats } from '../../gateway/shared/channel/floor.js';

function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}
function shuffle<T>(a: T[], r: () => number): T[] {
  const b = a.slice();
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [b[i], b[j]] = [b[j]!, b[i]!];
  }
  return b;
}
const hex = (r: () => number) => Array.from({ length: 16 }, () => Math.floor(r() * 16).toString(16)).join('');

for (const n of [2, 5, 20]) {
  t.test(`${n} simultaneous starts converge on one winner at every participant`, async (t) => {
    const r = rng(n * 7919);
    for (let round = 0; round < 200; round++) {
      // Start times within a few ms of each other (sender clocks), some identical.
      const t0 = 1_700_000_000_000;
      const claims: Claim[] = Array.from({ length: n }, (_, i) => ({ stream: hex(r), sender: `talker-${i}`, t: t0 + Math.floor(r() * 5), priority: 0 }));
      const holders = new Set<string>();
      // Each participant (the talkers plus 3 listeners) hears the claims in its own order; a talker hears its own first.
      for (let p = 0; p < n + 3; p++) {
        const floor = new Floor({ silenceMs: 1000 });
        const order =
          p < n
            ? [
                claims[p]!,
                ...shuffle(
                  claims.filter((_, i) => i !== p),
                  r,
                ),
              ]
            : shuffle(claims, r);
        for (const c of order) floor.claim(c, 0);
        holders.add(floor.holder!.stream);
      }
      t.equal(holders.size, 1, `round ${round}: one winner everywhere`);
      const best = claims.reduce((a, b) => (beats(a, b) ? a : b));
      t.equal([...holders][0], best.stream, 'the winner is the best claim by the documented order');
    }
  });
}

t.test('order: priority, then earlier start, then lower stream id', async (t) => {
  const a: Claim = { stream: 'ffffffffffffffff', sender: 'a', t: 2000, priority: 1 };
  const b: Claim = { stream: '0000000000000000', sender: 'b', t: 1000, priority: 0 };
  t.ok(beats(a, b), 'priority first');
  t.ok(beats({ ...b, t: 999 }, b), 'earlier start');
  t.ok(beats({ ...b, stream: '0000000000000000' }, { ...b, stream: '0000000000000001' }), 'lower stream id');
  t.notOk(beats(b, b), 'a claim does not beat itself');
});

t.test('a talker that vanished releases the floor after the silence time', async (t) => {
  const f = new Floor({ silenceMs: 1000 });
  f.claim({ stream: 'aaaaaaaaaaaaaaaa', sender: 'a', t: 1, priority: 0 }, 0);
  f.heard('aaaaaaaaaaaaaaaa', 500);
  t.same(f.tick(1400), [], 'still alive 900 ms after the last packet');
  const changes = f.tick(1500);
  t.match(changes, [{ type: 'released', reason: 'silence' }]);
  t.equal(f.holder, null);
  t.same(f.claim({ stream: 'aaaaaaaaaaaaaaaa', sender: 'a', t: 1, priority: 0 }, 1600), [], 'an ended over cannot come back');
  t.ok(f.isEnded('aaaaaaaaaaaaaaaa'));
});

t.test('nextSilence is when the quietest over would fall silent', async (t) => {
  const f = new Floor({ silenceMs: 1000 });
  t.equal(f.nextSilence(), null, 'nobody talking: nothing to check');
  f.claim({ stream: 'a', sender: 'x', t: 1, priority: 0 }, 100);
  f.claim({ stream: 'b', sender: 'y', t: 2, priority: 0 }, 300);
  t.equal(f.nextSilence(), 1100);
  f.heard('a', 500);
  t.equal(f.nextSilence(), 1300, 'hearing the quietest moves the check to the next one');
  f.tick(1299);
  t.notOk(f.isEnded('b'), 'not silent a millisecond before');
  f.tick(1300);
  t.ok(f.isEnded('b'), 'silent at nextSilence');
  t.notOk(f.isEnded('a'));
  t.equal(f.nextSilence(), 1500);
});

t.test('a waiting claim gets the floor when the holder ends', async (t) => {
  const f = new Floor({ silenceMs: 1000 });
  const a: Claim = { stream: 'aaaaaaaaaaaaaaaa', sender: 'a', t: 1, priority: 0 };
  const b: Claim = { stream: 'bbbbbbbbbbbbbbbb', sender: 'b', t: 2, priority: 0 };
  f.claim(a, 0);
  t.same(f.claim(b, 10), [], 'b waits');
  t.equal(f.holder!.stream, a.stream);
  t.match(f.release(a.stream), [
    { type: 'released', claim: a },
    { type: 'granted', claim: b },
  ]);
});

t.test('preemption reports the previous holder', async (t) => {
  const f = new Floor({ silenceMs: 1000 });
  const late: Claim = { stream: 'bbbbbbbbbbbbbbbb', sender: 'b', t: 5, priority: 0 };
  const early: Claim = { stream: 'cccccccccccccccc', sender: 'c', t: 4, priority: 0 };
  f.claim(late, 0);
  t.match(f.claim(early, 1), [{ type: 'granted', claim: early, previous: late }]);
});

t.test('the ended-stream memory is bounded', async (t) => {
  const f = new Floor({ silenceMs: 1000, rememberEnded: 10 });
  for (let i = 0; i < 100; i++) f.release(i.toString(16).padStart(16, '0'));
  t.notOk(f.isEnded('0000000000000000'));
  t.ok(f.isEnded((99).toString(16).padStart(16, '0')));
});
