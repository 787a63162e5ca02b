/**
 * The address bar: what a link asks the page to join when it opens or changes, and what the page
 * writes back. Everything is in the fragment, which browsers never send to a server; a key in it
 * leaves the address bar as soon as the page has read it.
 */
import { type JoinParams, buildFragment, defaultBroker, fragmentHasKey, loadName, parseFragment, storeKey, withDefaults, withoutKey } from './config.js';
import { keptUser, refOf, storage, storedKey, storedPassword, tabStorage } from './store.js';

/** What the link asks for: a join, or the join form (with what to say on it). Either way, what to fill the form with. */
export type LinkRequest = { prefill: Partial<JoinParams> } & ({ join: JoinParams } | { errors: string[]; askPasswordOf?: string; focusPassword?: boolean });

export function readLink(): LinkRequest {
  const f = parseFragment(location.hash, location.protocol);
  const p = withDefaults(f.params, location);
  if (fragmentHasKey(location.hash)) {
    // The key leaves the address bar at once (not shown, bookmarked, synced or shared by
    // accident); this tab keeps it so that a reload still joins.
    history.replaceState(null, '', location.pathname + location.search + withoutKey(location.hash));
    if (p.channel && p.secret?.kind === 'key') storeKey(tabStorage, refOf({ ...p, channel: p.channel }), p.secret.key);
  }
  const name = p.name ?? loadName(storage);
  const prefill = { ...p, name };
  if (p.channel && !p.secret) {
    const key = storedKey(refOf({ ...p, channel: p.channel }));
    if (key) p.secret = { kind: 'key', key };
  }
  // A login named by the link, else the one kept for this broker; its password only from storage.
  const user = p.user ?? keptUser(p.broker);
  const password = user ? storedPassword(p.broker, user) : undefined;
  if (user && password === undefined) {
    const errors = f.errors.length ? f.errors : p.channel ? [`Enter the password for "${user}" to join #${p.channel}.`] : [];
    return { prefill, errors, askPasswordOf: user, focusPassword: !!(p.channel && name) };
  }
  if (p.channel && name && f.errors.length === 0) return { prefill, join: { ...p, channel: p.channel, name, ...(user ? { user, password: password! } : {}) } };
  return { prefill, errors: f.errors };
}

/** While joined the address bar names the channel and us, so a reload joins again; never the key. */
export function showJoinedLink(params: JoinParams): void {
  history.replaceState(null, '', buildFragment(params, { includeName: true, defaultBrokerUrl: defaultBroker(location) }));
}

export function clearLink(): void {
  history.replaceState(null, '', location.pathname + location.search);
}

/** The link "Copy link" copies: without the name (and password, always); with the key when encrypted. */
export function shareUrl(params: JoinParams, encrypted: boolean): string {
  return location.href.split('#')[0] + buildFragment(params, { includeName: false, defaultBrokerUrl: defaultBroker(location), includeKey: encrypted });
}

/** A link opened in this tab while it is open: joins it, or leaves for it when it names another channel or a new key. */
export function watchLink(page: { joined(): JoinParams | null; joining(): boolean; leave(): Promise<void>; start(): void }): void {
  window.addEventListener('hashchange', () => {
    const joined = page.joined();
    const f = parseFragment(location.hash, location.protocol);
    const newKey = f.params.secret?.kind === 'key' && f.params.secret.key !== (joined?.secret as { key?: string } | undefined)?.key;
    if (joined && f.params.channel && (newKey || f.params.channel !== joined.channel || (f.params.broker && f.params.broker !== joined.broker))) {
      // Leaving clears the address bar: the new link must survive it.
      const hash = location.hash;
      history.replaceState(null, '', location.pathname + location.search + withoutKey(hash));
      void page.leave().then(() => {
        history.replaceState(null, '', location.pathname + location.search + hash);
        page.start();
      });
    } else if (!joined && !page.joining() && f.params.channel) {
      page.start();
    } else if (fragmentHasKey(location.hash)) {
      history.replaceState(null, '', location.pathname + location.search + withoutKey(location.hash));
    }
  });
}
