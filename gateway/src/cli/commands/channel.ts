import { readFileSync, writeFileSync } from 'node:fs';
import { DEFAULT_PREFIX, normalizeChannel, validatePrefix } from '../../../shared/channel/topics.js';
import { type ChannelKey, KeyError, formatKey, generateKey, parseKey } from '../../../shared/crypto/keys.js';
import { type Command, UsageError, intFlag } from '../command.js';

/**
 * The invite link: the web client's address with everything needed to join in the fragment. A
 * fragment never leaves the browser in an HTTP request, so the key stays out of server and proxy logs.
 */
export function inviteLink(o: { web: string; channel: string; key: ChannelKey; broker?: string; prefix?: string; user?: string }): string {
  const q = new URLSearchParams();
  if (o.broker) q.set('broker', o.broker);
  q.set('channel', o.channel);
  if (o.prefix && o.prefix !== DEFAULT_PREFIX) q.set('prefix', o.prefix);
  // The broker login's user name, to fill the web form (never a password: it would sit in chats and QR photos).
  if (o.user) q.set('user', o.user);
  q.set('key', formatKey(o.key));
  const u = new URL(o.web);
  u.hash = q.toString();
  return u.toString();
}

export const channel: Command = {
  name: 'channel',
  summary: 'Create an end-to-end encrypted channel: a new random key, its invite link and QR code.',
  usage:
    'channel new NAME [--web URL] [--broker URL] [--user NAME] [--epoch N] [--key-file FILE] [--no-qr]\n       talkbridge channel invite NAME --key-file FILE [--web URL] [--broker URL] [--user NAME]',
  details:
    '`new` makes a random 256-bit key. Put it in the gateway config (channels[].key or keyFile) and give the\n' +
    'invite link or QR code to the team: the link opens the web client (--web, where the gateway serves it)\n' +
    'and joins the channel; `talkbridge send/listen --invite LINK` take it too. Anyone holding the link can\n' +
    'listen and talk, so share it like a password. To rotate (someone left), run `new` with a higher --epoch,\n' +
    'keep the old key in previousKeys for the overlap, and hand out the new invite. `invite` prints the link\n' +
    'again for an existing key.',
  positionals: [2, 2],
  flags: {
    web: { type: 'string', arg: 'URL', help: 'address of the web client the link opens', default: 'http://localhost:8080/' },
    broker: { type: 'string', short: 'b', arg: 'URL', help: 'ws:// or wss:// broker for browsers (default: the gateway that serves the page)' },
    prefix: { type: 'string', arg: 'TOPIC', help: 'topic prefix', default: DEFAULT_PREFIX },
    user: { type: 'string', short: 'u', arg: 'NAME', help: "broker login the link fills in (the person's own; the page asks for the password)" },
    epoch: { type: 'string', arg: 'N', help: 'key epoch, 0-65535 (raise it to rotate a key)', default: '1' },
    'key-file': { type: 'string', arg: 'FILE', help: 'new: write the key here (mode 0600, never overwritten); invite: read it from here' },
    'no-qr': { type: 'boolean', help: 'do not draw the QR code' },
  },
  async run(flags, [verb, rawName]) {
    if (verb !== 'new' && verb !== 'invite') throw new UsageError(`unknown channel action "${verb}" (new or invite)`);
    let name: string;
    try {
      name = normalizeChannel(rawName!);
      validatePrefix(String(flags.prefix));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    let web: string;
    try {
      const u = new URL(String(flags.web));
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
      web = u.toString();
    } catch {
      throw new UsageError(`--web: "${String(flags.web)}" is not an http:// or https:// address`);
    }
    const broker = typeof flags.broker === 'string' ? flags.broker : undefined;
    if (broker && !/^wss?:\/\/\S+$/.test(broker)) throw new UsageError('--broker: browsers reach brokers over WebSocket only: give a ws:// or wss:// URL');
    // The link travels in chats and QR photos: never a login in it (--user fills in the name only).
    if (broker && /^wss?:\/\/[^/?#]*@/i.test(broker))
      throw new UsageError('--broker: no user name or password in the URL, please: --user puts the user name in the link, and the page asks for the password');
    const file = typeof flags['key-file'] === 'string' ? flags['key-file'] : null;
    const user = typeof flags.user === 'string' ? flags.user : undefined;
    if (user !== undefined && (!user || user.length > 128 || /[\s\u0000-\u001f]/.test(user))) throw new UsageError(`--user: "${user}" is not a broker user name (1-128 characters, no spaces)`);

    let key: ChannelKey;
    if (verb === 'new') {
      key = generateKey(intFlag(flags, 'epoch', 0, 65535)!);
      if (file) {
        try {
          writeFileSync(file, formatKey(key) + '\n', { mode: 0o600, flag: 'wx' });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new UsageError(code === 'EEXIST' ? `--key-file: ${file} exists; not overwriting a key (remove it first)` : `--key-file: cannot write ${file}: ${code}`);
        }
      }
    } else {
      if (!file) throw new UsageError('invite needs --key-file FILE');
      try {
        key = parseKey(readFileSync(file, 'utf8'));
      } catch (err) {
        if (err instanceof KeyError) throw new UsageError(`--key-file ${file}: ${err.message}`);
        throw new UsageError(`--key-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
      }
    }
    const link = inviteLink({ web, channel: name, key, broker, prefix: String(flags.prefix), user });
    const out: string[] = [];
    if (verb === 'new') {
      out.push(`channel ${name}: new key, epoch ${key.epoch}`, '');
      out.push('Gateway config (docs/config.md):', '  channels:', `    - name: ${name}`);
      out.push(file ? `      keyFile: ${file}` : `      key: "${formatKey(key)}"`, '');
    }
    out.push('Invite link (anyone holding it can listen and talk; share it like a password):', `  ${link}`, '');
    process.stdout.write(out.join('\n') + '\n');
    if (!flags['no-qr']) {
      // qrcode is CommonJS. Node's own loader gives its exports as named ones too, but the bundle
      // (scripts/build-daemon.mjs) puts it in a chunk of its own whose namespace has only `default`
      // (module.exports): take `default` when there is one.
      const ns = await import('qrcode');
      const qr = (ns as unknown as { default?: typeof ns }).default ?? ns;
      process.stdout.write((await qr.toString(link, { type: 'terminal', small: true, errorCorrectionLevel: 'M' })) + '\n');
    }
    return 0;
  },
};
