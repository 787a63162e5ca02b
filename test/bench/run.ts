import os from 'node:os';
import { benchCodec } from './codec.js';
import { benchLatency } from './latency.js';
import { benchFanout } from './fanout.js';
import { benchBridge } from './bridge.js';
import { memoryRun } from './memory.js';
import { benchSvxlink } from './svxlink.js';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);
const fmt = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 4 : 2)) : String(v));

function table(rows: Array<Record<string, unknown>>) {
  const cols = Object.keys(rows[0] ?? {});
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  console.log(cols.map((c, i) => c.padEnd(w[i]!)).join(' | '));
  console.log(w.map((x) => '-'.repeat(x)).join('-|-'));
  for (const r of rows) console.log(cols.map((c, i) => fmt(r[c]).padEnd(w[i]!)).join(' | '));
}

console.log(`talkbridge benchmarks — ${os.cpus().length} × ${os.cpus()[0]?.model}, Node ${process.version}, ${new Date().toISOString()}`);
if (want('codec')) {
  console.log('\n## Opus codec CPU (16 kHz mono, 16 kbit/s, 20 ms frames, complexity 9, VOIP)');
  const c = await benchCodec();
  for (const [k, v] of Object.entries(c)) console.log(`  ${k.padEnd(52)} ${fmt(v)}`);
  console.log('  (opusenc also pays for WAV/Ogg I/O and resamples 16 kHz input to 48 kHz internally; opusdec for Ogg and WAV output)');
}
if (want('latency')) {
  console.log('\n## Sender → listener through Mosquitto on loopback (capture → playout, per packet, 3 overs each)');
  table(await benchLatency());
  console.log('  targets: p50 ≤ 50 ms and p95 ≤ 80 ms at 1 frame per packet; ≤ 45 kbit/s at 2 frames per packet');
}
if (want('fanout')) {
  console.log('\n## Fan-out: listeners one Mosquitto serves from one talker (25 packets/s for 10 s)');
  table(await benchFanout());
}
if (want('bridge')) {
  console.log('\n## Bridge: radio-in → radio-out, gateway to gateway through Mosquitto on loopback (default settings, sound-card buffers aside)');
  const b = await benchBridge();
  table(b.latency);
  console.log('  targets: p50 ≤ 70 ms, p95 ≤ 100 ms; event-loop delay p99 ≤ 10 ms (both bridges run in the benchmark process)');
  console.log('\n## Bridge daemons (two `talkbridge run` processes, six overs of 20 s of speech bridged, then 1,000 short overs into B)');
  for (const [k, v] of Object.entries(b.daemon)) console.log(`  ${k.padEnd(56)} ${fmt(v)}`);
  console.log('  targets: CPU ≤ 1.3× native tools; RSS ≤ 60 MB idle and flat after 1,000 overs');
}
if (want('memory')) {
  console.log('\n## Daemon memory (one `talkbridge run` bridging one radio on one channel, external Mosquitto, as the systemd unit runs it)');
  const m = await memoryRun(2000, (...a: unknown[]) => console.log('  ', ...a));
  console.log(`  idle RSS ${m.idleMB} MB; overs played ${m.played}`);
  console.log('  target: RSS ≤ 60 MB idle and flat after 1,000 overs');
}
if (want('svxlink')) {
  console.log('\n## Side by side with SvxLink: one probe, two nodes through one server on loopback, events interleaved');
  for (const t of await benchSvxlink()) {
    console.log(`\n### ${t.title}`);
    table(t.rows);
    for (const n of t.notes) console.log(`  ${n}`);
  }
}
