/**
 * What the page keeps in the browser: the device's localStorage and the tab's sessionStorage
 * (config.ts says what goes where, and why), read and written through config.ts's functions.
 */
import { makeSenderId } from '../../shared/channel/topics.js';
import { type ChannelRef, keyFor, type Login, loginFor, storeLogin } from './config.js';

export const storage = (() => {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
})();
/** Channel keys for this tab only (config.ts: where keys are kept). */
export const tabStorage = (() => {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
})();

export function refOf(p: { broker: string; prefix: string; channel: string }): ChannelRef {
  return { broker: p.broker, prefix: p.prefix, channel: p.channel };
}

/** The key this tab holds for a channel, else the one remembered on the device. */
export function storedKey(r: ChannelRef): string | null {
  return keyFor(tabStorage, r) ?? keyFor(storage, r);
}

/** The user name kept for this broker: this tab's, else the device's. */
export function keptUser(broker: string): string | undefined {
  return (loginFor(tabStorage, broker) ?? loginFor(storage, broker))?.user;
}

/** The password kept for this broker and user (tab first, then device), if any. */
export function storedPassword(broker: string, user: string): string | undefined {
  for (const s of [tabStorage, storage]) {
    const l = loginFor(s, broker);
    if (l?.user === user && l.password !== undefined) return l.password;
  }
  return undefined;
}

/** Keeps a login that is about to be used: for the tab, and on the device (the password only if ticked). */
export function keepLogin(broker: string, login: Login, remember: boolean): void {
  storeLogin(tabStorage, broker, login);
  storeLogin(storage, broker, remember ? login : { user: login.user });
}

/** Forgets the broker's login everywhere (a join without one). */
export function forgetLogin(broker: string): void {
  for (const s of [tabStorage, storage]) storeLogin(s, broker, null);
}

/** Forgets the broker's password everywhere and keeps its user name (the broker refused the login). */
export function forgetPassword(broker: string): void {
  for (const s of [tabStorage, storage]) {
    const l = loginFor(s, broker);
    if (l) storeLogin(s, broker, { user: l.user });
  }
}

/** This tab's sender id for a name: the same across reloads, different in another tab. */
export function senderFor(name: string): string {
  const key = `talkbridge.sender.${name}`;
  try {
    const s = sessionStorage.getItem(key);
    if (s && /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(s)) return s;
    const id = makeSenderId(name);
    sessionStorage.setItem(key, id);
    return id;
  } catch {
    return makeSenderId(name);
  }
}
