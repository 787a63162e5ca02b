/**
 * Fake sound cards at their OS boundary: `arecord` and `aplay` executables that a daemon finds
 * first on its PATH, shared by the tests, the fuzzer and the benchmarks. (The ALSA driver's own
 * tests, test/radio/audio.test.ts and drain.test.ts, use fakes of their own that check arguments,
 * die on demand and model a card's buffer.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeExe } from '../radio/helpers.js';

/** Real python3, not a version manager's shim (a shim costs a shell start per fake sound card). */
export function python(): string {
  if (fs.existsSync('/usr/bin/python3')) return '/usr/bin/python3';
  for (const d of (process.env.PATH ?? '').split(':')) if (d && fs.existsSync(path.join(d, 'python3'))) return path.join(d, 'python3');
  throw new Error('python3 is needed for the fake sound cards (apt-get install python3)');
}

/** What a fake card's capture side delivers. */
export const CAPTURE = {
  /** Silence, paced in real time, in the periods arecord was asked for. */
  silence: `import sys, time
a = sys.argv[1:]
rate = int(a[a.index('-r') + 1]) if '-r' in a else 48000
period = rate // 50
for x in a:
    if x.startswith('--period-size='):
        period = int(x.split('=')[1])
chunk = bytes(period * 2)
step = period / rate
t = time.monotonic()
try:
    while True:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        t += step
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            t = time.monotonic()
except (BrokenPipeError, KeyboardInterrupt):
    pass
`,
  /** A card that stalls: never a byte. */
  stalled: '',
  /**
   * Whatever arrives on UDP port $TB_BENCH_ARECORD_PORT, handed on in the periods arecord was
   * asked for (a period leaves once its last frame has arrived, as on a card).
   */
  udp: `
import os, socket, sys
period = 960
for a in sys.argv[1:]:
    if a.startswith('--period-size='):
        period = int(a.split('=')[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(os.environ['TB_BENCH_ARECORD_PORT'])))
need = period * 2
buf = bytearray()
try:
    while True:
        buf += s.recv(65536)
        while len(buf) >= need:
            os.write(1, bytes(buf[:need]))
            del buf[:need]
except (BrokenPipeError, KeyboardInterrupt):
    pass
`,
};

/** What a fake card's playback side does with what it is given. */
export const PLAYBACK = {
  /** Takes it all, at once. */
  null: '',
  /** Each write forwarded to UDP port $TB_BENCH_APLAY_PORT as it comes. */
  udp: `
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = ('127.0.0.1', int(os.environ['TB_BENCH_APLAY_PORT']))
rest = b''
try:
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        d = rest + d
        n = len(d) & ~1
        rest = d[n:]
        for i in range(0, n, 8192):
            s.sendto(d[i:min(n, i + 8192)], dst)
except KeyboardInterrupt:
    pass
`,
};

/** Writes `arecord` and `aplay` into `binDir` (put it first on the daemon's PATH). */
export function installSoundCard(binDir: string, o: { capture?: keyof typeof CAPTURE; playback?: keyof typeof PLAYBACK } = {}): void {
  const capture = o.capture ?? 'silence';
  const playback = o.playback ?? 'null';
  writeExe(binDir, 'arecord', capture === 'stalled' ? '#!/bin/sh\nexec sleep 1000\n' : `#!${python()}\n${CAPTURE[capture]}`);
  writeExe(binDir, 'aplay', playback === 'null' ? '#!/bin/sh\nexec cat > /dev/null\n' : `#!${python()}\n${PLAYBACK[playback]}`);
}
