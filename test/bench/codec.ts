/**
 * Codec CPU per second of audio: talkbridge's Opus path (native libopus encode + WASM decode, and
 * the all-WASM fallback) against the native opus-tools run on the same file in the same run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeWav, readWav } from '../../gateway/src/audio/wav.js';
import { createDecoder, createEncoder, loadOpusWasm } from '../../gateway/src/codec/opus-node.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { FIXTURES } from '../helpers/cli.js';
import { ChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { generateKey } from '../../gateway/shared/crypto/keys.js';
import { Codec, decodePacket, newStreamId } from '../../gateway/shared/channel/packet.js';

const settings = { sampleRate: 16000 as const, frameMs: 20 as const, bitrate: 16000, complexity: 9 };

function cpu(fn: () => void): number {
  const a = process.cpuUsage();
  fn();
  const d = process.cpuUsage(a);
  return (d.user + d.system) / 1e6;
}

function bashTime(cmd: string): number {
  const r = spawnSync('bash', ['-c', `TIMEFORMAT='%U %S'; time ( ${cmd} 2>/dev/null )`], { encoding: 'utf8' });
  const m = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
  return m[0]! + m[1]!;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export async function benchCodec(): Promise<Record<string, number | string>> {
  const one = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const reps = 12;
  const samples = new Int16Array(one.samples.length * reps);
  for (let i = 0; i < reps; i++) samples.set(one.samples, i * one.samples.length);
  const seconds = samples.length / 16000;
  const frames = toFrames(samples, 320, 1);

  const run = async (label: string, encFactory: () => Promise<{ encode(p: Int16Array): Uint8Array }>) => {
    let best = Infinity;
    let bestEnc = 0;
    let bestDec = 0;
    for (let round = 0; round < 3; round++) {
      const enc = await encFactory();
      const dec = await createDecoder(settings);
      const pkts: Uint8Array[] = [];
      const e = cpu(() => {
        for (const f of frames) pkts.push(enc.encode(f));
      });
      const d = cpu(() => {
        for (const p of pkts) dec.decode(p);
      });
      if (e + d < best) [best, bestEnc, bestDec] = [e + d, e, d];
    }
    return { label, enc: bestEnc / seconds, dec: bestDec / seconds, total: best / seconds };
  };
  const native = await run('native encode + WASM decode', () => createEncoder(settings));
  const wasm = await run('WASM encode + WASM decode', async () => (await loadOpusWasm()).createEncoder(settings));

  // End-to-end encryption: seal (sender) + open (receiver) every 2-frame packet of the same audio.
  const enc = await createEncoder(settings);
  const opus = frames.map((f) => enc.encode(f));
  const tx = new ChannelCrypto({ channel: 'bench', keys: [generateKey(1)] });
  const rx = new ChannelCrypto({ channel: 'bench', keys: [{ epoch: 1, raw: (tx as unknown as { o: { keys: Array<{ raw: Uint8Array }> } }).o.keys[0]!.raw }], maxSkewMs: 0 });
  let aeadBest = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = process.cpuUsage();
    const stream = newStreamId();
    for (let i = 0, seq = 0; i + 1 < opus.length; i += 2, seq++) {
      const pkt = await tx.sealAudio('bench', { flags: 0, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId: stream, seq, timestamp: seq * 40 }, [opus[i]!, opus[i + 1]!], 0);
      const r = await rx.openAudio('bench', decodePacket(pkt), 0);
      if (!r.ok) throw new Error(`bench packet refused: ${r.reason}`);
    }
    const d = process.cpuUsage(t0);
    aeadBest = Math.min(aeadBest, (d.user + d.system) / 1e6);
  }

  const out: Record<string, number | string> = {
    audioSeconds: seconds,
    'AES-256-GCM seal+open (2 frames/packet) CPU-s per audio-s': aeadBest / seconds,
    'talkbridge encode CPU-s per audio-s': native.enc,
    'talkbridge decode CPU-s per audio-s': native.dec,
    'talkbridge encode+decode CPU-s per audio-s': native.total,
    'WASM fallback encode+decode CPU-s per audio-s': wasm.total,
  };
  if (have('opusenc') && have('opusdec')) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-bench-'));
    const wav = path.join(dir, 'in.wav');
    writeFileSync(wav, encodeWav({ sampleRate: 16000, samples }));
    const ogg = path.join(dir, 'x.opus');
    const encCmd = `opusenc --quiet --bitrate 16 --framesize 20 --comp 9 --set-ctl-int 4000=2048 ${wav} ${ogg}`;
    const decCmd = `opusdec --quiet --rate 16000 --no-dither ${ogg} ${path.join(dir, 'out.wav')}`;
    execFileSync('bash', ['-c', encCmd]);
    let encBest = Infinity;
    let decBest = Infinity;
    for (let i = 0; i < 3; i++) {
      encBest = Math.min(encBest, bashTime(encCmd));
      decBest = Math.min(decBest, bashTime(decCmd));
    }
    out['opusenc CPU-s per audio-s'] = encBest / seconds;
    out['opusdec CPU-s per audio-s'] = decBest / seconds;
    out['opusenc+opusdec CPU-s per audio-s'] = (encBest + decBest) / seconds;
    out['ratio talkbridge / native tools (target ≤ 1.3)'] = native.total / ((encBest + decBest) / seconds);
    out['ratio WASM fallback / native tools'] = wasm.total / ((encBest + decBest) / seconds);
  } else {
    out['native tools'] = 'opus-tools not installed (apt-get install opus-tools)';
  }
  return out;
}
