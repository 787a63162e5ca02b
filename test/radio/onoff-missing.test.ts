/**
 * onoff is an optional dependency (it has no prebuilt binaries, and a Pi with no compiler skips
 * it): a gateway configured for sysfs GPIO without it must say what to do, not fail with a
 * module-resolution error. A resolve hook in a child process makes `onoff` missing, as `npm ci`
 * leaves it where it cannot be compiled.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { ROOT } from '../helpers/cli.js';

const HOOKS = `export async function resolve(specifier, context, next) {
  if (specifier === 'onoff') throw Object.assign(new Error("Cannot find package 'onoff'"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}`;
const REGISTER = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOKS)}));`;

t.test('sysfs GPIO without onoff installed: a clear message naming both ways out', async (t) => {
  const mod = pathToFileURL(path.join(ROOT, 'gateway/src/radio/ptt/gpio-sysfs.ts')).href;
  const script = `import(${JSON.stringify(mod)}).then((m) => m.loadOnoff()).then(() => console.log('loaded'), (e) => console.log(e.name + ': ' + e.message));`;
  const out = execFileSync(process.execPath, [...process.execArgv, '--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, '--input-type=module', '-e', script], {
    encoding: 'utf8',
  }).trim();
  t.match(out, /^RadioError: sysfs GPIO \(api: sysfs\): the onoff module is not installed/, out);
  t.match(out, /api: chardev/, 'names the libgpiod path');
  t.match(out, /npm install onoff/, 'and how to build onoff');
});

t.test('with onoff installed it loads', async (t) => {
  const { loadOnoff } = await import('../../gateway/src/radio/ptt/gpio-sysfs.js');
  t.equal(typeof (await loadOnoff()), 'function');
});
