/** The page's join parameters, recent channels, reconnect back-off and what each state shows. */
import t from 'tap';
import { DEFAULT_PREFIX } from '../../gateway/shared/channel/topics.js';
import { CodecSchema } from '../../gateway/src/config/schema.js';
import { BridgeSchema } from '../../gateway/src/bridge/schema.js';
import {
  CODEC,
  DEFAULT_TALK_TIMEOUT_S,
  MAX_RECENT,
  brokerProblem,
  buildFragment,
  defaultBroker,
  fragmentHasKey,
  keyFor,
  loadName,
  loadRecent,
  parseFragment,
  rememberRecent,
  saveName,
  storeKey,
  withDefaults,
  withoutKey,
} from '../../gateway/web/src/config.js';
import { formatKey, generateKey } from '../../gateway/shared/crypto/keys.js';
import { backoffMs } from '../../gateway/web/src/net.js';
import { type Model, cryptoProblemAfter, cryptoProblemAfterAuthenticated, cryptoView, viewOf } from '../../gateway/web/src/view.js';

class MemStore {
  m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

t.test('the page speaks the gateway codec defaults', async (t) => {
  const d = CodecSchema.parse({});
  t.same({ sampleRate: CODEC.sampleRate, frameMs: CODEC.frameMs, framesPerPacket: CODEC.framesPerPacket, bitrate: CODEC.bitrate, complexity: CODEC.complexity }, d);
});

t.test("the page's talk time-out is the gateway's: the longest over a radio may send to the channel", async (t) => {
  t.equal(DEFAULT_TALK_TIMEOUT_S, BridgeSchema.parse({}).rxTimeoutSeconds);
});

t.test('fragment: broker, channel, name and options', async (t) => {
  const f = parseFragment('#broker=wss%3A%2F%2Fkit.example%2Fmqtt&channel=Base&name=%20Ann%20%20B%20&codec=wasm&timeout=60', 'https:');
  t.same(f.errors, []);
  t.same(f.params, { broker: 'wss://kit.example/mqtt', channel: 'base', name: 'Ann B', codec: 'wasm', talkTimeoutS: 60 });
  t.same(parseFragment('', 'https:'), { params: {}, errors: [] });
  t.same(parseFragment('#', 'http:').params, {});
});

t.test('fragment: bad values are reported, never thrown', async (t) => {
  const f = parseFragment('#broker=mqtt://x:1883&channel=no%20spaces&codec=mp3&timeout=1&prefix=a//b&key=abc', 'https:');
  t.equal(f.errors.length, 6, f.errors.join(' | '));
  t.same(f.params, {});
  t.match(parseFragment('#broker=ws://x/mqtt', 'https:').errors[0], /wss/);
  t.same(parseFragment('#broker=ws://x/mqtt', 'http:').params, { broker: 'ws://x/mqtt' });
  t.match(parseFragment('#broker=%E0%A4%A', 'http:').errors[0] ?? 'ok', /./, 'malformed escapes do not throw');
  t.same(parseFragment('#name=' + 'x'.repeat(200), 'http:').params.name?.length, 64);
});

t.test('broker URL checks and the gateway default', async (t) => {
  t.equal(defaultBroker({ protocol: 'http:', host: '10.0.0.1:8080' }), 'ws://10.0.0.1:8080/mqtt');
  t.equal(defaultBroker({ protocol: 'https:', host: 'kit.example' }), 'wss://kit.example/mqtt');
  t.equal(brokerProblem('wss://a/mqtt', 'https:'), null);
  t.match(brokerProblem('not a url', 'http:'), /not a URL/);
  t.match(brokerProblem('mqtt://a:1883', 'http:'), /WebSocket/);
  t.match(brokerProblem('ws://a/mqtt', 'https:'), /wss/);
});

t.test('a broker URL with a login is refused, pointing to the login fields, and never echoed', async (t) => {
  // A password, a user name alone (a token as user name), an empty password, an `@` inside the password.
  for (const url of ['wss://ann:s3cret@kit.example/mqtt', 'wss://tok3n@kit.example/mqtt', 'ws://ann:@kit.example/mqtt', 'wss://ann:p@ss@kit.example/mqtt', 'wss://:s3cret@kit.example/mqtt']) {
    const why = brokerProblem(url, 'http:');
    t.match(why, /must not carry a login.*User name and Password fields/, url);
    t.notMatch(why!, /ann|s3cret|tok3n|p@ss/, 'the login is not repeated');
    const f = parseFragment(`#broker=${encodeURIComponent(url)}&channel=ops`, 'https:');
    t.notOk(f.params.broker, 'a link with a login in its broker URL yields no broker');
    t.equal(f.errors.length, 1);
    t.match(f.errors[0], /^broker: .*must not carry a login/);
  }
  t.notMatch(brokerProblem('wss://ann:s3cret@[bad/mqtt', 'http:')!, /ann|s3cret/, 'an unparseable URL is quoted without its userinfo');
  t.equal(brokerProblem('wss://kit.example/mqtt?user=x#a@b', 'https:'), null, 'an @ after the host is no login');
});

t.test('fragment round trip; a shared link leaves the name out', async (t) => {
  const loc = { protocol: 'https:', host: 'kit.example' };
  const p = { broker: 'wss://other/mqtt', channel: 'ops-2', name: 'Ann', prefix: DEFAULT_PREFIX, codec: 'auto' as const, talkTimeoutS: DEFAULT_TALK_TIMEOUT_S };
  const frag = buildFragment(p, { includeName: true, defaultBrokerUrl: defaultBroker(loc) });
  t.same(withDefaults(parseFragment(frag, 'https:').params, loc), p);
  t.notMatch(buildFragment(p, { includeName: false, defaultBrokerUrl: defaultBroker(loc) }), /name=/);
  const same = buildFragment({ ...p, broker: 'wss://kit.example/mqtt' }, { includeName: false, defaultBrokerUrl: defaultBroker(loc) });
  t.equal(same, '#channel=ops-2', 'the default broker is left out');
});

t.test('recent channels: newest first, no duplicates, bounded, robust to junk', async (t) => {
  const s = new MemStore();
  for (let i = 0; i < 12; i++) rememberRecent(s, { broker: 'ws://a/mqtt', channel: `c${i}`, prefix: DEFAULT_PREFIX }, i);
  let list = loadRecent(s);
  t.equal(list.length, MAX_RECENT);
  t.equal(list[0]!.channel, 'c11');
  list = rememberRecent(s, { broker: 'ws://a/mqtt', channel: 'c5', prefix: DEFAULT_PREFIX }, 99);
  t.equal(list[0]!.channel, 'c5');
  t.equal(list.filter((r) => r.channel === 'c5').length, 1);
  s.setItem('talkbridge.recent', '{nope');
  t.same(loadRecent(s), []);
  s.setItem('talkbridge.recent', JSON.stringify([{ broker: 1 }, null, { broker: 'ws://b', channel: 'x', prefix: 'p', at: 1 }]));
  t.same(
    loadRecent(s).map((r) => r.channel),
    ['x'],
  );
  t.same(loadRecent(null), []);
  const full = {
    getItem: () => null,
    setItem: () => {
      throw new Error('QuotaExceededError');
    },
  };
  t.doesNotThrow(() => rememberRecent(full, { broker: 'ws://a', channel: 'c', prefix: 'p' }, 1));
  saveName(s, '  Ann  ');
  t.equal(loadName(s), 'Ann');
});

t.test('reconnect back-off: doubles from the base, jittered 1-2x, capped', async (t) => {
  t.equal(
    backoffMs(1, 1000, () => 0),
    1000,
  );
  t.equal(
    backoffMs(2, 1000, () => 0),
    2000,
  );
  t.equal(
    backoffMs(3, 1000, () => 0.5),
    6000,
  );
  t.equal(
    backoffMs(50, 1000, () => 0),
    30000,
  );
  t.equal(
    backoffMs(50, 1000, () => 0.999),
    59970,
  );
  t.equal(
    backoffMs(0, 1000, () => 0),
    1000,
  );
});

const talker = (name: string, self = false) => ({ stream: '0123456789abcdef', sender: 's', name, source: 'radio' as const, t: 0, self });
const base: Model = { conn: { kind: 'connected', url: 'ws://x' }, mic: 'unknown', talk: { kind: 'idle' }, holder: null, now: 1000 };

t.test('view: every state says what is going on', async (t) => {
  let v = viewOf(base);
  t.same([v.status.text, v.ptt.look, v.ptt.unavailable, v.ptt.caption, v.talker], ['Connected', 'ready', false, 'Hold to talk', null]);
  v = viewOf({ ...base, conn: { kind: 'connecting', url: 'x' } });
  t.same([v.status.text, v.ptt.look, v.ptt.unavailable], ['Connecting…', 'blocked', true]);
  v = viewOf({ ...base, conn: { kind: 'reconnecting', url: 'x', attempt: 3, retryAt: 5000, reason: 'x' } });
  t.match(v.status.text, /Broker lost — reconnecting \(attempt 3, next try in 4 s\)/);
  t.equal(v.status.tone, 'error');
  t.equal(v.ptt.caption, 'Broker lost');
  v = viewOf({ ...base, holder: talker('Ann') });
  t.same([v.ptt.look, v.ptt.unavailable, v.ptt.caption, v.talker], ['busy', true, 'Busy — Ann is talking', { name: 'Ann', source: 'radio', self: false }]);
  v = viewOf({ ...base, holder: talker('Ann'), talk: { kind: 'refused', holder: talker('Ann') } });
  t.same([v.ptt.look, v.ptt.pressed, v.ptt.caption], ['busy', true, 'Busy — Ann has the channel']);
  t.match(v.hint, /refused/);
  v = viewOf({ ...base, holder: talker('Me', true), talk: { kind: 'talking', stream: 'x', since: 0, deadline: 120000 } });
  t.same([v.ptt.look, v.ptt.pressed, v.ptt.caption], ['talking', true, 'On air — 119 s left']);
  v = viewOf({ ...base, talk: { kind: 'timeout' } });
  t.match(v.hint, /time-out/);
  v = viewOf({ ...base, mic: 'insecure' });
  t.same([v.ptt.look, v.ptt.caption], ['blocked', 'Listening only']);
  t.match(v.micNote, /needs HTTPS or localhost/);
  v = viewOf({ ...base, mic: 'denied', talk: { kind: 'failed', reason: 'mic-denied', message: 'microphone permission denied' } });
  t.match(v.micNote, /permission denied/);
  t.equal(v.hint, 'microphone permission denied');
  v = viewOf({ ...base, mic: 'requesting', talk: { kind: 'starting' } });
  t.equal(v.ptt.caption, 'Allow the microphone…');
  v = viewOf({ ...base, conn: { kind: 'setup' } });
  t.equal(v.status.text, 'Not joined');
});

t.test('fragment: an invite key is validated, normalised, and never echoed in the error', async (t) => {
  const key = formatKey(generateKey(3));
  const f = parseFragment(`#channel=ops&key=${key}`, 'https:');
  t.same(f.errors, []);
  t.same(f.params, { channel: 'ops', secret: { kind: 'key', key } });
  t.same(parseFragment(`#channel=ops&key=%20${key}%20`, 'https:').params.secret, { kind: 'key', key }, 'surrounding blanks are trimmed');
  for (const bad of ['1.short', key.slice(0, -1) + '!', `70000.${key.split('.')[1]}`, '']) {
    const e = parseFragment(`#channel=ops&key=${encodeURIComponent(bad)}`, 'https:');
    t.equal(e.errors.length, 1, `"${bad}" is refused`);
    t.match(e.errors[0], /^key: /);
    if (bad) t.notOk(e.errors[0]!.includes(bad), 'the error does not repeat the key');
    t.notOk(e.params.secret);
  }
});

t.test('the key leaves the address bar; only an invite link carries it', async (t) => {
  const key = formatKey(generateKey(1));
  const hash = `#broker=wss%3A%2F%2Fb%2Fmqtt&channel=ops&key=${key}&name=Ann`;
  t.ok(fragmentHasKey(hash));
  t.equal(withoutKey(hash), '#broker=wss%3A%2F%2Fb%2Fmqtt&channel=ops&name=Ann');
  t.notOk(fragmentHasKey(withoutKey(hash)));
  t.equal(withoutKey(`#key=${key}`), '');
  const loc = { protocol: 'https:', host: 'kit.example' };
  const p = { ...withDefaults(parseFragment(hash, 'https:').params, loc), channel: 'ops', name: 'Ann' };
  t.notMatch(buildFragment(p, { includeName: true, defaultBrokerUrl: defaultBroker(loc) }), /key=/, 'the address bar fragment has no key');
  const invite = buildFragment(p, { includeName: false, defaultBrokerUrl: defaultBroker(loc), includeKey: true });
  t.notMatch(invite, /name=/);
  t.same(parseFragment(invite, 'https:').params.secret, { kind: 'key', key }, 'the invite round-trips the key');
  t.notMatch(
    buildFragment({ ...p, secret: { kind: 'passphrase', passphrase: 'correct horse battery' } }, { includeName: false, defaultBrokerUrl: '', includeKey: true }),
    /key=|correct/,
    'a passphrase never goes into a link',
  );
});

t.test('keys on the device: kept per broker, prefix and channel; forgotten on request; junk is no key', async (t) => {
  const s = new MemStore();
  const ref = { broker: 'wss://b/mqtt', prefix: DEFAULT_PREFIX, channel: 'ops' };
  const key = formatKey(generateKey(2));
  t.equal(keyFor(s, ref), null);
  storeKey(s, ref, key);
  t.equal(keyFor(s, ref), key);
  t.equal(keyFor(s, { ...ref, channel: 'base' }), null, 'another channel');
  t.equal(keyFor(s, { ...ref, broker: 'wss://other/mqtt' }), null, 'the same channel name on another broker');
  storeKey(s, ref, null);
  t.equal(keyFor(s, ref), null);
  t.notOk(s.m.has('talkbridge.keys'), 'nothing left behind');
  s.setItem('talkbridge.keys', JSON.stringify({ [`${ref.broker}|${ref.prefix}|ops`]: 'nope' }));
  t.equal(keyFor(s, ref), null);
  s.setItem('talkbridge.keys', '[1,2');
  t.equal(keyFor(s, ref), null);
  t.equal(keyFor(null, ref), null);
  const full = {
    getItem: () => null,
    setItem: () => {
      throw new Error('QuotaExceededError');
    },
  };
  t.doesNotThrow(() => storeKey(full, ref, key));
  // The recent list says a channel was encrypted, never with what key.
  rememberRecent(s, { ...ref, encrypted: true }, 5);
  t.same(loadRecent(s)[0], { ...ref, at: 5, encrypted: true });
  t.notMatch(s.getItem('talkbridge.recent')!, /\d\.[A-Za-z0-9_-]{43}/);
});

t.test('encryption: the page says whether the channel is encrypted, and what is wrong, in words', async (t) => {
  t.same(cryptoView({ encrypted: true, epoch: 4, problem: null }), { label: 'End-to-end encrypted · key epoch 4', tone: 'ok', note: null, noteTone: 'info', blocksTalk: false });
  const clear = cryptoView({ encrypted: false, epoch: null, problem: null });
  t.match(clear.label, /^Not encrypted/);
  t.equal(clear.tone, 'warn');
  const noKey = cryptoView({ encrypted: false, epoch: null, problem: 'no-key' });
  t.match(noKey.note, /This channel is encrypted — you need the invite link/);
  t.ok(noKey.blocksTalk);
  const wrong = cryptoView({ encrypted: true, epoch: 1, problem: 'wrong-key' });
  t.match(wrong.note, /^Wrong key: nothing from this channel can be played/);
  t.same([wrong.noteTone, wrong.blocksTalk], ['error', true]);
  t.notOk(cryptoView({ encrypted: true, epoch: 1, problem: 'foreign' }).blocksTalk, 'someone else with a bad key does not stop us talking');
  const base: Model = { conn: { kind: 'connected', url: 'ws://x' }, mic: 'unknown', talk: { kind: 'idle' }, holder: null, now: 0 };
  const v = viewOf({ ...base, crypto: { encrypted: true, epoch: 1, problem: 'wrong-key' } });
  t.same([v.ptt.look, v.ptt.unavailable, v.ptt.caption], ['blocked', true, 'Wrong key']);
  t.equal(viewOf({ ...base, crypto: { encrypted: false, epoch: null, problem: 'no-key' } }).ptt.caption, 'Needs the channel key');
  t.equal(viewOf({ ...base, crypto: { encrypted: true, epoch: 1, problem: null } }).ptt.look, 'ready');
});

t.test('encryption: which problem the dropped input points to', async (t) => {
  t.equal(cryptoProblemAfter(null, 'encrypted', false), 'no-key');
  t.equal(cryptoProblemAfter(null, 'auth', false), 'wrong-key', "someone's over fails and nothing has ever opened: our key is wrong");
  t.equal(cryptoProblemAfter(null, 'auth', false, true), 'mismatch', 'only a presence failed: theirs or ours, nobody can tell yet');
  t.equal(cryptoProblemAfter('mismatch', 'auth', false), 'wrong-key', 'then an over fails too');
  t.equal(cryptoProblemAfter('mismatch', 'auth', true, true), 'foreign');
  t.equal(cryptoProblemAfterAuthenticated('mismatch'), 'foreign');
  t.notOk(cryptoView({ encrypted: true, epoch: 1, problem: 'mismatch' }).blocksTalk);
  t.equal(cryptoProblemAfter(null, 'auth', true), 'foreign', 'others open fine: that sender has the wrong key (or forges)');
  t.equal(cryptoProblemAfterAuthenticated('wrong-key'), 'foreign', 'someone authenticates after all');
  t.equal(cryptoProblemAfterAuthenticated(null), null);
  t.equal(cryptoProblemAfter(null, 'unknown-epoch', true), 'other-epoch');
  t.equal(cryptoProblemAfter(null, 'unencrypted', true), 'clear-sender');
  for (const r of ['replay', 'stale', 'old-epoch', 'packet-short', 'presence']) t.equal(cryptoProblemAfter(null, r, true), null, `${r} needs no words`);
  t.equal(cryptoProblemAfter('wrong-key', 'unencrypted', false), 'wrong-key', 'the worse problem stays');
});
