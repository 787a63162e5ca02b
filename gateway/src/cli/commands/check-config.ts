import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import type { Command } from '../command.js';

export const checkConfig: Command = {
  name: 'check-config',
  summary: 'Validate a config file (with environment overrides applied) and report every problem at once.',
  usage: 'check-config [--print | --json] FILE',
  positionals: [1, 1],
  flags: {
    print: { type: 'boolean', short: 'p', help: 'print the effective configuration (defaults filled in, secrets hidden)' },
    json: { type: 'boolean', help: 'print the effective configuration as JSON, secrets included (for programs; FILE may be - for none)' },
  },
  async run(flags, [file]) {
    const config = loadConfig(file === '-' ? null : file!);
    if (flags.json) {
      process.stdout.write(JSON.stringify(config) + '\n');
    } else if (flags.print) {
      const shown = structuredClone(config);
      if (shown.broker.password !== undefined) shown.broker.password = '(hidden)';
      for (const u of Object.values(shown.embeddedBroker.auth?.users ?? {})) if (u.password !== undefined) u.password = '(hidden)';
      for (const c of shown.channels) {
        c.keys = c.keys.map((k) => `${k.split('.')[0]}.(hidden)`);
        if (c.passphrase !== null) c.passphrase = '(hidden)';
      }
      process.stdout.write(stringify(shown));
    } else {
      process.stdout.write(`${file}: ok (${config.channels.length} channel${config.channels.length === 1 ? '' : 's'}: ${config.channels.map((c) => c.name).join(', ')})\n`);
    }
    return 0;
  },
};
