import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dynsecJson, mosquittoAcl, mosquittoPasswd } from '../../broker/mosquitto-files.js';
import { loadTeam } from '../../broker/team.js';
import { type Command, UsageError } from '../command.js';

/** Written beside and renamed over: a broker reloading (SIGHUP) mid-write must never read half a file. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, file);
  } catch (err) {
    throw new UsageError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export const acl: Command = {
  name: 'acl',
  summary: 'Write Mosquitto access control for a team: ACL and password files, or dynamic-security JSON.',
  usage: 'acl TEAM.yaml --out DIR [--format acl|dynsec|both]',
  details:
    'TEAM.yaml lists the users, their role (talk, listen, gateway, admin) and their channels (docs/security.md).\n' +
    'Every user may publish only on topics ending in its own username, which is also its sender id: one login\n' +
    'per device. `acl` writes DIR/talkbridge.acl and DIR/talkbridge.passwd (Mosquitto 2 PBKDF2-SHA512 hashes);\n' +
    '`dynsec` writes DIR/dynamic-security.json for the dynamic security plugin. The mosquitto.conf lines to\n' +
    'use are printed. Passwords never appear in the output.',
  positionals: [1, 1],
  flags: {
    out: { type: 'string', short: 'o', arg: 'DIR', help: 'folder for the generated files (created if missing)' },
    format: { type: 'string', arg: 'FORMAT', help: 'acl (acl_file + password_file), dynsec, or both', default: 'acl' },
    quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
  },
  async run(flags, [file]) {
    const format = String(flags.format);
    if (!['acl', 'dynsec', 'both'].includes(format)) throw new UsageError(`--format must be acl, dynsec or both, not "${format}"`);
    if (typeof flags.out !== 'string' || flags.out === '') throw new UsageError('--out is required (the folder for the generated files)');
    const team = loadTeam(file!);
    const dir = path.resolve(flags.out);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new UsageError(`--out: cannot create ${dir}: ${(err as NodeJS.ErrnoException).code}`);
    }
    const written: string[] = [];
    const conf: string[] = [
      '# mosquitto.conf (Mosquitto 2): one listener, no anonymous access',
      'per_listener_settings false',
      'allow_anonymous false',
      '# talkbridge packets are at most 4 KB; presence, control and status fit in 16 KB',
      'max_packet_size 16384',
      '# a slow subscriber must not buffer seconds of stale audio',
      'max_queued_messages 100',
    ];
    if (format !== 'dynsec') {
      const aclFile = path.join(dir, 'talkbridge.acl');
      const pwFile = path.join(dir, 'talkbridge.passwd');
      writeAtomic(aclFile, mosquittoAcl(team.model, path.basename(file!)), 0o644);
      // Hashes only, but a leaked hash can still be attacked offline: owner-readable only.
      writeAtomic(pwFile, mosquittoPasswd(team), 0o600);
      written.push(aclFile, pwFile);
      conf.push(`acl_file ${aclFile}`, `password_file ${pwFile}`);
    }
    if (format !== 'acl') {
      const dsFile = path.join(dir, 'dynamic-security.json');
      writeAtomic(dsFile, JSON.stringify(dynsecJson(team), null, 2) + '\n', 0o600);
      written.push(dsFile);
      if (format === 'dynsec') conf.push('plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so   # the path differs per distribution and architecture', `plugin_opt_config_file ${dsFile}`);
    }
    if (flags.quiet) return 0;
    const lines: string[] = [];
    for (const u of team.model.users.values()) {
      const chans = [...u.channels].map(([c, r]) => (r === 'talk' ? c : `${c} (listen)`)).join(', ');
      lines.push(`  ${u.name.padEnd(16)} ${u.role.padEnd(8)} ${chans}${team.passwords.has(u.name) ? '' : '   [no password: client certificate only]'}`);
    }
    process.stdout.write(
      [
        `${team.model.users.size} user${team.model.users.size === 1 ? '' : 's'} on prefix ${team.model.prefix}:`,
        ...lines,
        '',
        'wrote:',
        ...written.map((w) => `  ${w}`),
        '',
        ...conf,
        '',
        `Make the files readable by the broker's user (e.g. chown mosquitto: ${written.join(' ')}) and restart Mosquitto.`,
        '',
      ].join('\n'),
    );
    return 0;
  },
};
