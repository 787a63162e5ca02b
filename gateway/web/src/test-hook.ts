/**
 * What the browser tests (test/web/) read from the page: window.__talkbridgeTest, present only
 * when a test put it there before the page's scripts ran.
 */
import type { AudioEngine } from './audio.js';
import type { JoinedChannel } from './channel.js';
import type { Model } from './view.js';

interface TestHook {
  state?: () => unknown;
  decoded?: Array<{ stream: string; name: string; chunks: Int16Array[] }>;
  played?: Float32Array[];
  playedRate?: number;
  latencies?: number[];
  sent?: number;
  stats?: unknown[];
  /** How long the last passphrase took to turn into a key, ms. */
  deriveMs?: number;
  /** The text the last QR code was drawn from, and the SVG the library drew. */
  qr?: { text: string; svg: string };
}

// Classic WebDriver (WebKit's) cannot run a script before the page's own: an automated browser's
// tab may ask for the hook in its sessionStorage instead.
try {
  if (navigator.webdriver && sessionStorage.getItem('__talkbridgeTest') === '1') (window as unknown as { __talkbridgeTest?: object }).__talkbridgeTest ??= {};
} catch {
  /* storage blocked */
}

export const hook: TestHook | null = typeof (window as { __talkbridgeTest?: unknown }).__talkbridgeTest === 'object' ? (window as unknown as { __talkbridgeTest: TestHook }).__talkbridgeTest : null;

export function installHook(audio: AudioEngine, page: { model(): Model; channel(): JoinedChannel | null }): void {
  if (!hook) return;
  hook.decoded = [];
  hook.played = [];
  hook.latencies = [];
  hook.sent = 0;
  hook.stats = [];
  hook.state = () => {
    const model = page.model();
    const joined = page.channel();
    return {
      conn: model.conn.kind,
      talk: model.talk.kind,
      holder: model.holder ? { name: model.holder.name, source: model.holder.source, self: model.holder.self } : null,
      mic: model.mic,
      encoder: joined?.codecs.encoderBackend ?? null,
      sender: joined?.session.sender ?? null,
      listenOnly: !!model.listenOnly,
      joined: !!joined && joined.session.online.has(joined.session.sender),
      online: joined ? [...joined.session.online.values()].map((p) => p.name) : [],
      sampleRate: audio.sampleRate,
      outputLatencyMs: audio.outputLatencyMs,
      e2e: model.crypto ? { ...model.crypto } : null,
      drops: joined ? { ...joined.session.counters } : {},
    };
  };
  audio.on('tap', (s) => hook.played!.push(s));
  audio.on('stats', (s) => hook.stats!.push(s));
  void audio.start().then(() => {
    hook.playedRate = audio.sampleRate;
    audio.setTap(true);
  });
}

/** What a newly joined channel decodes and sends, for the tests to compare. */
export function watchChannel(c: JoinedChannel): void {
  if (!hook) return;
  c.on('overStart', (i) => hook.decoded?.push({ stream: i.stream, name: i.name, chunks: [] }));
  c.on('audio', (f) => {
    hook.decoded?.at(-1)?.chunks.push(f.pcm);
    if (f.packetStart && !f.concealed) hook.latencies?.push(f.latencyMs);
  });
  c.on('sent', () => (hook.sent = (hook.sent ?? 0) + 1));
}
