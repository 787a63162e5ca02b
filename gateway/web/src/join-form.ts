/**
 * The join form: name, channel, passphrase, broker login and broker URL, checked before anything
 * connects; the recent channels; what it says about a channel's key, and why a join failed.
 */
import { DEFAULT_PREFIX, normalizeChannel } from '../../shared/channel/topics.js';
import { KeyError, formatKey, keyFromPassphrase, parseKey } from '../../shared/crypto/keys.js';
import { type JoinParams, brokerProblem, cleanName, defaultBroker, loadName, loadRecent, loginFor, parseFragment, userProblem, withDefaults } from './config.js';
import { $ } from './dom.js';
import { forgetLogin, keepLogin, keptUser, refOf, storage, storedKey, storedPassword } from './store.js';
import { hook } from './test-hook.js';
import { NEEDS_SECURE_CONTEXT, loginRefusedText } from './view.js';

export class JoinForm {
  /** @param submit a join the person asked for, checked and with the login kept */
  constructor(private readonly submit: (params: JoinParams) => void) {
    $<HTMLFormElement>('join-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.onSubmit();
    });
    for (const id of ['f-channel', 'f-broker']) $(id).addEventListener('input', () => this.updateKeyNote());
  }

  show(errors: string[] = []): void {
    $('join').hidden = false;
    $('join-error').textContent = errors.join(' ');
    this.renderRecent();
  }

  hide(): void {
    $('join').hidden = true;
  }

  prefill(p: Partial<JoinParams>): void {
    $<HTMLInputElement>('f-name').value = p.name ?? loadName(storage);
    $<HTMLInputElement>('f-channel').value = p.channel ?? '';
    $<HTMLInputElement>('f-broker').value = p.broker ?? defaultBroker(location);
    $<HTMLInputElement>('f-passphrase').value = '';
    const broker = p.broker ?? defaultBroker(location);
    $<HTMLInputElement>('f-user').value = p.user ?? keptUser(broker) ?? '';
    $<HTMLInputElement>('f-password').value = '';
    $<HTMLInputElement>('f-remember-login').checked = !!loginFor(storage, broker)?.password;
    this.updateKeyNote();
  }

  /** A login named by a link, whose password is never in one. */
  askPassword(user: string, focus: boolean): void {
    $<HTMLInputElement>('f-user').value = user;
    if (focus) $<HTMLInputElement>('f-password').focus();
  }

  /** The broker refused the login: say so, and put the focus on the field to fix. */
  refused(user: string | undefined): void {
    this.show([loginRefusedText(user)]);
    $<HTMLInputElement>(user ? 'f-password' : 'f-user').focus();
  }

  /**
   * Turns a passphrase into a key (PBKDF2, about half a second, shown on the form) and checks that
   * this browser can do the cryptography at all. Returns the key text, or null after showing why not.
   */
  async resolveKey(params: JoinParams): Promise<string | null | undefined> {
    const s = params.secret;
    if (!s) return undefined;
    if (!globalThis.crypto?.subtle) {
      this.show([NEEDS_SECURE_CONTEXT]);
      return null;
    }
    if (s.kind === 'key') return s.key;
    const progress = $('join-progress');
    const button = $<HTMLButtonElement>('join-button');
    progress.textContent = 'Deriving the channel key from the passphrase…';
    button.disabled = true;
    const t0 = performance.now();
    try {
      const key = formatKey(await keyFromPassphrase(params.channel, s.passphrase));
      if (hook) hook.deriveMs = performance.now() - t0;
      return key;
    } catch (err) {
      this.show([err instanceof KeyError ? `Passphrase: ${err.message}.` : `Cannot derive the key: ${(err as Error).message}`]);
      return null;
    } finally {
      progress.textContent = '';
      button.disabled = false;
    }
  }

  private onSubmit(): void {
    const name = cleanName($<HTMLInputElement>('f-name').value);
    const broker = $<HTMLInputElement>('f-broker').value.trim() || defaultBroker(location);
    const errors: string[] = [];
    let channel = '';
    try {
      channel = normalizeChannel($<HTMLInputElement>('f-channel').value);
    } catch (err) {
      errors.push((err as Error).message);
    }
    if (!name) errors.push('Enter a name so others know who is talking.');
    const why = brokerProblem(broker, location.protocol);
    if (why) errors.push(`Broker: ${why}.`);
    const user = $<HTMLInputElement>('f-user').value.trim();
    const password = $<HTMLInputElement>('f-password').value || (user ? storedPassword(broker, user) : undefined);
    const userWhy = user ? userProblem(user) : null;
    if (userWhy) errors.push(`User name: ${userWhy}.`);
    else if (user && !password) errors.push(`Enter the password for "${user}".`);
    else if (!user && password) errors.push('Enter the user name that goes with the password.');
    if (errors.length) return this.show(errors);
    if (user) keepLogin(broker, { user, password: password! }, $<HTMLInputElement>('f-remember-login').checked);
    else forgetLogin(broker);
    const frag = withDefaults(parseFragment(location.hash, location.protocol).params, location);
    const passphrase = $<HTMLInputElement>('f-passphrase').value;
    const key = storedKey(refOf({ broker, prefix: frag.prefix, channel }));
    const secret = passphrase ? { kind: 'passphrase' as const, passphrase } : key ? { kind: 'key' as const, key } : undefined;
    const { user: _u, ...rest } = frag;
    this.submit({ ...rest, broker, channel, name, secret, ...(user ? { user, password: password! } : {}) });
  }

  private renderRecent(): void {
    const ul = $('recent');
    ul.replaceChildren();
    const list = loadRecent(storage);
    $('recent-wrap').hidden = list.length === 0;
    for (const r of list) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'recent';
      b.textContent = r.channel;
      b.classList.toggle('lock', r.encrypted === true);
      const small = document.createElement('small');
      small.textContent = r.broker;
      b.append(small);
      b.addEventListener('click', () => {
        $<HTMLInputElement>('f-channel').value = r.channel;
        $<HTMLInputElement>('f-broker').value = r.broker;
        const key = storedKey(r);
        this.showKeyNote(
          key ? `Using the key kept for #${r.channel} (epoch ${parseKey(key).epoch}).` : r.encrypted ? `#${r.channel} is encrypted: open its invite link, or type its passphrase.` : null,
          !!key,
        );
        if (r.encrypted && !key) return $<HTMLInputElement>('f-passphrase').focus();
        $<HTMLInputElement>('f-name').focus();
        if (cleanName($<HTMLInputElement>('f-name').value)) $<HTMLFormElement>('join-form').requestSubmit();
      });
      li.append(b);
      ul.append(li);
    }
  }

  /** The note on the join form about the channel's key; a passphrase typed anyway replaces the key. */
  private showKeyNote(text: string | null, haveKey = false): void {
    const n = $('f-key-note');
    n.hidden = !text;
    n.textContent = text ?? '';
    $('f-passphrase-hint').textContent = haveKey ? '(only to replace the key above)' : '(if the channel has one)';
  }

  /** Whether the channel typed into the form has a key in this tab or on the device. */
  private updateKeyNote(): void {
    let channel: string;
    try {
      channel = normalizeChannel($<HTMLInputElement>('f-channel').value);
    } catch {
      return this.showKeyNote(null);
    }
    const broker = $<HTMLInputElement>('f-broker').value.trim() || defaultBroker(location);
    const prefix = parseFragment(location.hash, location.protocol).params.prefix ?? DEFAULT_PREFIX;
    const key = storedKey({ broker, prefix, channel });
    this.showKeyNote(key ? `Channel key for #${channel} (epoch ${parseKey(key).epoch}) — the channel is end-to-end encrypted.` : null, !!key);
  }
}
