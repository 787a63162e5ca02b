// The Node.js the test suite runs on. talkbridge runs on Node 20.19 and later, but its history
// recorder needs node:sqlite (Node 22.13 and later), and every test must run. Where this Node is
// older, the suite runs on the newest LTS from the npm registry (node-linux-<arch>, the same
// packages the arm64 check uses), kept in ~/.cache/talkbridge/node: nothing else on the machine
// changes. docs/operations.md, "Which Node the tests run on".
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TEST_NODE_MAJOR = 24;

/** Whether `version` ("v22.13.0") has node:sqlite without a flag. */
export function hasSqlite(version = process.version) {
  const [major, minor] = version.slice(1).split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 13);
}

/** The path of a node binary with node:sqlite: this one, or one fetched from the npm registry. */
export function testNode() {
  if (hasSqlite()) return process.execPath;
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  if (!arch || process.platform !== 'linux') throw new Error(`the tests need Node 22.13 or later (node:sqlite); this is ${process.version} on ${process.platform}-${process.arch}`);
  const cache = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'talkbridge', 'node');
  const dir = path.join(cache, `${arch}-${TEST_NODE_MAJOR}`);
  const bin = path.join(dir, 'bin', 'node');
  if (existsSync(bin)) return bin;
  console.error(`[test] Node ${process.version} has no node:sqlite; fetching Node ${TEST_NODE_MAJOR} (node-linux-${arch}) from the npm registry into ${cache}`);
  mkdirSync(cache, { recursive: true });
  const tgz = execFileSync('npm', ['pack', '--silent', `node-linux-${arch}@${TEST_NODE_MAJOR}`], { cwd: cache, encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop();
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // The binary, and the headers a native module is compiled against (no download from nodejs.org).
  execFileSync('tar', ['-xzf', path.join(cache, tgz), '-C', tmp, '--strip-components=1', 'package/bin/node', 'package/include']);
  rmSync(path.join(cache, tgz), { force: true });
  // Renamed into place whole, so a run stopped half-way never leaves a broken binary to reuse.
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  if (!readdirSync(path.join(dir, 'bin')).includes('node')) throw new Error(`no node binary in node-linux-${arch}@${TEST_NODE_MAJOR}`);
  return bin;
}

/**
 * Native modules npm compiled from source for the Node that installed them (onoff's epoll: no
 * prebuilds) are compiled again for `node` when they do not load there, with npm's own node-gyp
 * and the headers that came with that Node. Without a compiler they stay as they are, and the
 * test that loads them says why.
 */
export function rebuildNativeFor(node, root) {
  const epoll = path.join(root, 'node_modules', 'epoll');
  if (!existsSync(path.join(epoll, 'binding.gyp'))) return;
  const loads = () => spawnSync(node, ['-e', "require('epoll')"], { cwd: root, stdio: 'ignore' }).status === 0;
  if (loads()) return;
  const npmCli = process.env.npm_execpath ?? '';
  const gyp = path.join(path.dirname(path.dirname(npmCli)), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!existsSync(gyp)) return console.error(`[test] epoll is not built for Node ${TEST_NODE_MAJOR}, and npm's node-gyp was not found`);
  const nodedir = path.dirname(path.dirname(node));
  console.error(`[test] compiling onoff's epoll for Node ${TEST_NODE_MAJOR}`);
  // npm hands its own config to scripts as npm_config_*; a nodedir there (Debian's npm sets /usr)
  // would win over --nodedir and compile against the other Node's headers.
  const env = { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}`, npm_config_nodedir: nodedir };
  const r = spawnSync(node, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: epoll, env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0 || !loads()) console.error(`[test] could not compile epoll for Node ${TEST_NODE_MAJOR}:\n${(r.stderr ?? '').slice(-800)}`);
}
