import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import { redactUrl } from '../../net/redact.js';
import type { Command } from '../command.js';

export const checkConfig: Command = {
  name: 'check-config',
  summary: 'Validate a config file (with environment overrides applied) and report every problem at once.',
  usage: 'check-config [--print | --json | --mosquitto-bridge] FILE',
  positionals: [1, 1],
  flags: {
    print: { type: 'boolean', short: 'p', help: 'print the effective configuration (defaults filled in, secrets hidden)' },
    json: { type: 'boolean', help: 'print the effective configuration as JSON, secrets included (for programs; FILE may be - for none)' },
    'mosquitto-bridge': { type: 'boolean', help: 'print the uplink section as a Mosquitto bridge stanza, for kits whose local broker is Mosquitto (password not printed)' },
  },
  async run(flags, [file]) {
    const config = loadConfig(file === '-' ? null : file!);
    if (flags['mosquitto-bridge']) {
      const { mosquittoBridgeConf } = await import('../../net/mosquitto-bridge.js');
      process.stdout.write(mosquittoBridgeConf(config));
    } else if (flags.json) {
      process.stdout.write(JSON.stringify(config) + '\n');
    } else if (flags.print) {
      const shown = structuredClone(config);
      if (shown.broker.password !== undefined) shown.broker.password = '(hidden)';
      if (shown.uplink?.password !== undefined) shown.uplink.password = '(hidden)';
      // The config refuses passwords in URLs; a user name there is hidden all the same (net/redact.ts).
      for (const b of [shown.broker, shown.uplink]) {
        if (!b) continue;
        b.url = redactUrl(b.url);
        if (b.urls) b.urls = b.urls.map((u) => redactUrl(u));
      }
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
