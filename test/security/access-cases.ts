/**
 * One table of access cases, run against every broker that enforces talkbridge's model (Mosquitto
 * with the generated ACL + password files, Mosquitto with dynamic security, the embedded broker)
 * and against decide() itself. Each case is observed for real: a publish counts as allowed when a
 * watcher that may read everything receives it; a subscription counts as allowed when the probe
 * published to it reaches the subscriber.
 *
 * Order of events makes the negative answers trustworthy without fixed sleeps: every forbidden
 * message is published before the allowed ones, and the run waits until all allowed ones have
 * arrived (then a little longer) before it looks for forbidden ones.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

export const PREFIX = 'talkbridge/v1';
const P = PREFIX;

export const PASSWORDS: Record<string, string> = {
  alice: 'alice-password-1',
  bob: 'bob-password-22',
  carol: 'carol-password-3',
  'pi-north': 'gateway-password-4',
  boss: 'admin-password-55',
  watch: 'watcher-password-6',
};

/**
 * Mosquitto reads its password, ACL and plugin files after dropping root for the `mosquitto`
 * user, as on a real install: hand the files (and the folders above them) over, as docs/operations.md says.
 */
export function giveToMosquitto(...files: string[]): void {
  let uid: number, gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'mosquitto']).toString().trim());
    gid = Number(execFileSync('id', ['-g', 'mosquitto']).toString().trim());
  } catch {
    return; // no such user: Mosquitto keeps running as whoever started it
  }
  for (const f of files) {
    chownSync(f, uid, gid);
    for (let d = path.dirname(f); d !== path.dirname(d) && d.startsWith(os.tmpdir() + '/'); d = path.dirname(d)) chmodSync(d, 0o755);
  }
}

/** Written with passwordFile for alice (a file relative to the team file) and inline passwords for the rest. */
export function writeTeam(dir = mkdtempSync(path.join(os.tmpdir(), 'tb-team-'))): { dir: string; file: string } {
  writeFileSync(path.join(dir, 'alice.pw'), PASSWORDS.alice + '\n', { mode: 0o600 });
  const file = path.join(dir, 'team.yaml');
  writeFileSync(
    file,
    [
      `prefix: ${PREFIX}`,
      'users:',
      '  alice: { role: talk, channels: [base, ops], passwordFile: alice.pw }',
      `  bob: { role: listen, channels: [base], password: "${PASSWORDS.bob}" }`,
      `  carol: { role: talk, channels: [ops], password: "${PASSWORDS.carol}" }`,
      `  pi-north: { role: gateway, channels: { base: talk, ops: listen }, password: "${PASSWORDS['pi-north']}" }`,
      `  boss: { role: admin, channels: [ops], password: "${PASSWORDS.boss}" }`,
      "  # the tests' watcher: reads every channel and every gateway status",
      `  watch: { role: admin, channels: [base, ops], password: "${PASSWORDS.watch}" }`,
      '',
    ].join('\n'),
  );
  return { dir, file };
}

export interface PubCase {
  kind: 'publish';
  user: string;
  topic: string;
  allowed: boolean;
  why: string;
}
export interface SubCase {
  kind: 'subscribe';
  user: string;
  filter: string;
  /** Published by `by` (a user allowed to publish it) to test the subscription. */
  probe: string;
  by: string;
  allowed: boolean;
  why: string;
}
export type Case = PubCase | SubCase;

export const CASES: Case[] = [
  { kind: 'publish', user: 'alice', topic: `${P}/base/audio/alice`, allowed: true, why: "a talk user's over reaches listeners" },
  { kind: 'publish', user: 'alice', topic: `${P}/ops/control/alice`, allowed: true, why: 'a talk user controls its overs on each of its channels' },
  { kind: 'publish', user: 'bob', topic: `${P}/base/audio/bob`, allowed: false, why: "a listen-only user's audio never arrives" },
  { kind: 'publish', user: 'bob', topic: `${P}/base/control/bob`, allowed: false, why: 'a listen-only user cannot start an over' },
  { kind: 'publish', user: 'bob', topic: `${P}/base/presence/bob`, allowed: true, why: 'a listen-only user announces its own presence' },
  { kind: 'publish', user: 'alice', topic: `${P}/base/audio/bob`, allowed: false, why: "nobody publishes on another user's topics" },
  { kind: 'publish', user: 'bob', topic: `${P}/base/presence/alice`, allowed: false, why: "nobody clears another user's presence" },
  { kind: 'publish', user: 'carol', topic: `${P}/base/audio/carol`, allowed: false, why: 'no talking on a channel one is not a member of' },
  { kind: 'publish', user: 'pi-north', topic: `${P}/ops/audio/pi-north`, allowed: false, why: 'a per-channel listen role holds for gateways too' },
  { kind: 'publish', user: 'pi-north', topic: `${P}/_gateways/pi-north/status`, allowed: true, why: 'a gateway publishes its own status' },
  { kind: 'publish', user: 'alice', topic: `${P}/_gateways/pi-north/status`, allowed: false, why: "nobody fakes a gateway's status" },
  { kind: 'publish', user: 'pi-north', topic: `${P}/_gateways/pi-south/status`, allowed: false, why: "a gateway cannot publish another gateway's status" },
  { kind: 'subscribe', user: 'bob', filter: `${P}/base/+/+`, probe: `${P}/base/audio/alice`, by: 'alice', allowed: true, why: 'a member listens to its channel' },
  { kind: 'subscribe', user: 'bob', filter: `${P}/base/audio/alice`, probe: `${P}/base/audio/alice`, by: 'alice', allowed: true, why: 'narrower filters on its channel are fine' },
  { kind: 'subscribe', user: 'bob', filter: '#', probe: `${P}/ops/audio/alice`, by: 'alice', allowed: false, why: '"#" brings nothing from channels one is not in' },
  { kind: 'subscribe', user: 'bob', filter: `${P}/#`, probe: `${P}/ops/audio/alice`, by: 'alice', allowed: false, why: '"<prefix>/#" neither' },
  { kind: 'subscribe', user: 'carol', filter: `${P}/+/+/+`, probe: `${P}/base/audio/alice`, by: 'alice', allowed: false, why: 'a wildcard channel brings nothing from other channels' },
  { kind: 'subscribe', user: 'carol', filter: `${P}/base/+/+`, probe: `${P}/base/audio/alice`, by: 'alice', allowed: false, why: 'no listening on a channel one is not a member of' },
  { kind: 'subscribe', user: 'bob', filter: `${P}/_gateways/+/status`, probe: `${P}/_gateways/pi-north/status`, by: 'pi-north', allowed: false, why: 'gateway status is for admins' },
  { kind: 'subscribe', user: 'boss', filter: `${P}/_gateways/+/status`, probe: `${P}/_gateways/pi-north/status`, by: 'pi-north', allowed: true, why: 'an admin reads every gateway status' },
];

let seq = 0;
async function login(url: string, user: string, password = PASSWORDS[user]): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: `case-${user}-${process.pid}-${++seq}`, username: user, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10000 });
}

export interface Outcome {
  c: Case;
  got: boolean;
  suback?: 'granted' | 'refused';
}

/** Runs every case on a broker; returns what actually happened. */
export async function runCases(url: string, cases: Case[] = CASES, waitMs = 15000): Promise<Outcome[]> {
  const clients: MqttClient[] = [];
  const open = async (user: string) => {
    const c = await login(url, user);
    clients.push(c);
    c.on('error', () => {});
    return c;
  };
  try {
    const received = new Set<string>();
    const watcher = await open('watch');
    watcher.on('message', (_t, p) => received.add(p.toString()));
    for (const f of [`${P}/base/+/+`, `${P}/ops/+/+`, `${P}/_gateways/+/status`]) await watcher.subscribeAsync(f, { qos: 1 });

    // Each subscribe case: its own connection, so one case's subscription cannot answer another's.
    const subReceived = new Map<SubCase, Set<string>>();
    const subAcks = new Map<SubCase, 'granted' | 'refused'>();
    for (const c of cases) {
      if (c.kind !== 'subscribe') continue;
      const s = await open(c.user);
      const got = new Set<string>();
      s.on('message', (_t, p) => got.add(p.toString()));
      subReceived.set(c, got);
      // A refused subscription (SUBACK 0x80) rejects; Mosquitto's acl_file grants and filters instead.
      const r = await s.subscribeAsync(c.filter, { qos: 1 }).then(
        () => 'granted' as const,
        () => 'refused' as const,
      );
      subAcks.set(c, r);
    }
    const publishers = new Map<string, MqttClient>();
    const pub = async (user: string) => publishers.get(user) ?? (publishers.set(user, await open(user)), publishers.get(user)!);
    const run = `${process.pid}-${Date.now()}`;
    const tag = (i: number) => `case-${i}-${run}`;
    const ordered = cases.map((c, i) => ({ c, i })).sort((a, b) => Number(a.c.allowed) - Number(b.c.allowed));
    for (const { c, i } of ordered) {
      const p = await pub(c.kind === 'publish' ? c.user : c.by);
      await p.publishAsync(c.kind === 'publish' ? c.topic : c.probe, tag(i), { qos: 1 });
    }
    const seen = (c: Case, i: number) => (c.kind === 'publish' ? received : subReceived.get(c)!).has(tag(i));
    const until = Date.now() + waitMs;
    while (Date.now() < until && !cases.every((c, i) => !c.allowed || seen(c, i))) await new Promise((r) => setTimeout(r, 50));
    // Forbidden messages were sent first; anything on its way has had all that time plus this.
    await new Promise((r) => setTimeout(r, 300));
    return cases.map((c, i) => ({ c, got: seen(c, i), ...(c.kind === 'subscribe' ? { suback: subAcks.get(c) } : {}) }));
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  }
}

/** The CONNACK error for a login (null = accepted). */
export async function loginError(url: string, user: string | undefined, password: string | undefined): Promise<string | null> {
  try {
    const c = await mqtt.connectAsync(url, { clientId: `login-${process.pid}-${++seq}`, username: user, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10000 });
    await c.endAsync(true);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export function describe(c: Case): string {
  return c.kind === 'publish' ? `${c.user} publishes ${c.topic}` : `${c.user} subscribes ${c.filter} (probe ${c.probe})`;
}

/** A CA, a server certificate for localhost/127.0.0.1, a client certificate, and an unrelated CA. */
export function makePki(dir = mkdtempSync(path.join(os.tmpdir(), 'tb-pki-'))) {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = (name: string) => {
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.pem`),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  };
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-out', f(`${name}.pem`), '-extfile', f(`${name}.ext`));
  };
  ca('ca');
  ca('wrong-ca');
  leaf('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'alice', 'extendedKeyUsage=clientAuth\n');
  return { dir, ca: f('ca.pem'), wrongCa: f('wrong-ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}
