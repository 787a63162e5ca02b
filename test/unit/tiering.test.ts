import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const tiering = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../gateway/dist/src/app/tiering.js')).href;

/**
 * Calls of a tiny function, like the getters and callbacks on the audio path, before V8 marks it
 * for (or gives it) optimized code, in a fresh Node with or without tuneTiering(). Read with
 * %GetOptimizationStatus: bits 4 (optimized), 8 and 9 (marked for optimization), 10 (being
 * optimized). Larger functions hit a floor (~240 calls here) sooner, so they gain less than this.
 */
function callsToOptimize(tune: boolean): number {
  const src = `
    import { tuneTiering } from ${JSON.stringify(tiering)};
    if (${tune}) tuneTiering();
    const status = new Function('f', 'return %GetOptimizationStatus(f)');
    function onFrame(p) { return p.seq + p.frames.length; }
    const p = { seq: 3, frames: [new Uint8Array(40), new Uint8Array(42)] };
    let n = 1;
    for (; n <= 50000; n++) { onFrame(p); if (status(onFrame) & 0x710) break; }
    console.log(n);
  `;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

// Node 20's V8 waits ~3,800 calls by default (510 tuned); Node 24's already optimizes after ~510,
// and the flag then changes nothing. What must hold on every Node: optimized within ~600 calls
// (a few seconds of audio), and never later than V8 alone would.
t.test('the daemon gets small hot functions optimized within seconds of audio, on any Node', async (t) => {
  const base = callsToOptimize(false);
  const tuned = callsToOptimize(true);
  t.comment(`Node ${process.version}: calls before optimization: V8 default ${base}, tuned ${tuned}`);
  t.ok(tuned <= 50000 && base <= 50000, 'both get optimized');
  t.ok(tuned <= 600, `tuned: optimized after ${tuned} calls (≤ 600)`);
  t.ok(tuned <= base, `never later than the default (${base})`);
});
