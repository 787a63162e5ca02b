import os from 'node:os';
import { type Host, checkCaName, dedupe, defaultHosts, initTls, parseHost, parseSubtree, readTlsDir } from '../../http/certs.js';
import { altNames, spkiSha256 } from '../../http/tls.js';
import { type Command, UsageError } from '../command.js';

const list = (v: unknown): string[] =>
  typeof v === 'string'
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];

function hostsFrom(flags: Record<string, unknown>): Host[] {
  const given = list(flags.host);
  if (!given.length) return defaultHosts();
  return dedupe(given.map(parseHost));
}

function validity(c: { validFrom: string; validTo: string }): string {
  return `${new Date(c.validFrom).toISOString().slice(0, 10)} … ${new Date(c.validTo).toISOString().slice(0, 10)}`;
}

export const tls: Command = {
  name: 'tls',
  summary: "Make the team CA and the kit's HTTPS certificate, so phones get the microphone and encryption in the web client.",
  usage: 'tls init [--dir DIR] [--host NAME|IP ...] [--name TEAM] [--permit DOMAIN|CIDR ...] [--new-ca]\n       talkbridge tls show [--dir DIR]',
  details:
    '`init` creates a team CA (ca.crt, ca.key; 10 years, name-constrained to private addresses, .local and the\n' +
    'given names) the first time, and issues a server certificate (server.crt, server.key; 825 days) for the\n' +
    'hosts. Run it again to re-issue the server certificate (new address, new name): the CA is kept, so phones\n' +
    'need not reinstall anything. Keys are written mode 0600. Without --host it covers this machine: its\n' +
    'hostname, <hostname>.local, localhost, its IPv4 addresses and the usual hotspot gateway addresses\n' +
    '(10.42.0.1 NetworkManager, 192.168.4.1 hostapd guides, 10.3.141.1 RaspAP).\n' +
    'Set http.tls in the config (init prints the lines) and http.redirectPort: phones open the plain-HTTP port to\n' +
    'download the CA (/ca.crt); docs/operations.md walks through installing it on Android and iOS.\n' +
    'Keep ca.key off the kit when you can: it is only needed to issue certificates.',
  positionals: [1, 1],
  flags: {
    dir: { type: 'string', short: 'd', arg: 'DIR', help: 'where the CA and certificate live', default: '/etc/talkbridge/tls' },
    host: { type: 'string', arg: 'NAME|IP', help: 'a name or address phones use to reach the kit; repeat, or separate with commas (default: this machine)', multiple: true },
    name: { type: 'string', arg: 'TEAM', help: 'CA name phones show in their certificate list (new CA only)' },
    permit: { type: 'string', arg: 'DOMAIN|CIDR', help: 'also allow the new CA to certify this domain or address range; repeatable', multiple: true },
    'no-name-constraints': { type: 'boolean', help: 'make a CA that may certify any name (only for devices that reject name constraints)' },
    'new-ca': { type: 'boolean', help: 'replace the team CA (every phone must install the new one)' },
  },
  async run(flags, [verb]) {
    const dir = String(flags.dir);
    if (verb === 'show') return show(dir);
    if (verb !== 'init') throw new UsageError(`unknown tls action "${verb}" (init or show)`);
    const hosts = hostsFrom(flags);
    const permit = list(flags.permit).map(parseSubtree);
    if (flags['no-name-constraints'] && permit.length) throw new UsageError('--permit widens name constraints; it makes no sense with --no-name-constraints');
    const caName = checkCaName(typeof flags.name === 'string' ? flags.name : `talkbridge team CA (${os.hostname()})`);
    const r = initTls({ dir, hosts, caName, permit, nameConstraints: !flags['no-name-constraints'], newCa: Boolean(flags['new-ca']), skipUncovered: list(flags.host).length === 0 });
    const out = process.stdout;
    if (r.skipped.length)
      out.write(`left out ${r.skipped.map((h) => h.value).join(', ')}: the team CA does not cover ${r.skipped.length === 1 ? 'it' : 'them'} (name hosts with --host, or --new-ca)\n`);
    out.write(r.caCreated ? `created the team CA ${r.files.caCert} (key ${r.files.caKey}, mode 0600)\n` : `kept the team CA ${r.files.caCert}\n`);
    out.write(`issued ${r.files.cert} (key ${r.files.key}, mode 0600), valid ${validity(r.cert)}, for:\n`);
    for (const n of altNames(r.cert)) out.write(`  ${n}\n`);
    out.write(`team CA SHA-256 fingerprint: ${r.ca.fingerprint256}\n`);
    out.write(`  (phones show it when installing; read it out so people can check)\n`);
    out.write(
      `\nIn the config (then restart talkbridge):\n\nhttp:\n  host: 0.0.0.0\n  port: 8443\n  redirectPort: 8080\n  tls:\n    cert: ${r.files.cert}\n    key: ${r.files.key}\n    ca: ${r.files.caCert}\n\n`,
    );
    const ip = hosts.find((h) => h.kind === 'IP' && !h.value.startsWith('127.'));
    out.write(`Phones get the CA from http://${ip?.value ?? hosts[0]!.value}:8080/ (the redirect port) and then open https://${ip?.value ?? hosts[0]!.value}:8443/\n`);
    if (process.getuid?.() === 0) out.write(`The daemon runs as user talkbridge: sudo chown talkbridge: ${r.files.key}\n`);
    out.write(`Keep ${r.files.caKey} off the kit if you can (a USB stick in a drawer): it is needed only to run tls init again.\n`);
    return 0;
  },
};

function show(dir: string): number {
  const t = readTlsDir(dir);
  if (!t.ca && !t.cert) throw new UsageError(`no certificates in ${dir} (run talkbridge tls init --dir ${dir})`);
  const out = process.stdout;
  if (t.ca) {
    const cn =
      t.ca.subject
        .split('\n')
        .find((l) => l.startsWith('CN='))
        ?.slice(3) ?? t.ca.subject;
    out.write(`team CA      ${t.files.caCert}\n  name       ${cn}\n  valid      ${validity(t.ca)}\n  SHA-256    ${t.ca.fingerprint256}\n`);
    out.write(`  key        ${t.caKeyPresent ? t.files.caKey : 'not here (kept elsewhere)'}\n`);
    out.write(`  limited to ${t.constraints.length ? t.constraints.join(', ') : 'nothing (no name constraints)'}\n`);
  }
  if (t.cert) {
    out.write(
      `server cert  ${t.files.cert}\n  valid      ${validity(t.cert)}${new Date(t.cert.validTo) < new Date() ? ' — EXPIRED: run tls init again' : ''}\n  names      ${altNames(t.cert).join(', ')}\n`,
    );
    out.write(`  SPKI       ${spkiSha256(t.cert)}\n`);
    if (t.ca) out.write(`  issued by the team CA: ${t.cert.checkIssued(t.ca) && t.cert.verify(t.ca.publicKey) ? 'yes' : 'NO — re-run tls init'}\n`);
  }
  return 0;
}
