import t from 'tap';
import { StartLag } from '../../gateway/shared/channel/lag.js';

const TOL = 1000;

t.test('an over held back by the broker is late against its talker’s usual; the next on-time one is not', async (t) => {
  const lag = new StartLag();
  let now = 1_000_000;
  // Usual path: 60 ms from capture to arrival; the sender's clock 2 s ahead of ours.
  for (let i = 0; i < 5; i++, now += 10_000) t.ok(lag.observe('a', now + 2000 - 60, now, TOL) <= 10, 'on time');
  t.equal(lag.observe('a', now + 2000 - 60 - 45_000, now, TOL), 45_000, 'withheld 45 s');
  now += 10_000;
  t.equal(lag.observe('a', now + 2000 - 80, now, TOL), 20, 'the next over is judged against the usual, not the late one');
});

t.test('a talker heard for the first time is judged by our clock; a clock far behind costs its first over only', async (t) => {
  const lag = new StartLag();
  t.equal(lag.observe('new', 100_000 - 60, 100_000, TOL), 60, 'on time by our clock');
  t.equal(lag.observe('other', 100_000 - 45_000, 100_000, TOL), 45_000, 'an over held 45 s');
  t.equal(lag.observe('skewed', 100_000 - 4000, 100_000, TOL), 4000, 'a clock 4 s behind ours: the first over looks late');
  t.equal(lag.observe('skewed', 110_000 - 4050, 110_000, TOL), 50, 'the next is judged against the first: on time');
});

t.test('a clock stepped back (or a slower route) costs one over, not every over', async (t) => {
  const lag = new StartLag();
  let now = 1_000_000;
  for (let i = 0; i < 5; i++, now += 10_000) lag.observe('a', now - 50, now, TOL);
  // NTP steps the sender's clock back by 5 s: every over now arrives 5 s "later" than before.
  t.ok(lag.observe('a', now - 5050, now, TOL) > TOL, 'the first over after the step is judged late');
  now += 10_000;
  t.equal(lag.observe('a', now - 5070, now, TOL), 0, 'the second, just as late, is a lasting shift: on time');
  now += 10_000;
  t.equal(lag.observe('a', now - 5050, now, TOL), 0, 'and the usual follows it');
  // But a one-off late over between on-time ones stays late.
  now += 10_000;
  t.ok(lag.observe('a', now - 60_000, now, TOL) > TOL);
  now += 10_000;
  t.equal(lag.observe('a', now - 5040, now, TOL), 0);
  now += 10_000;
  t.ok(lag.observe('a', now - 60_000, now, TOL) > TOL, 'two held-back overs with an on-time one between are both late');
});
