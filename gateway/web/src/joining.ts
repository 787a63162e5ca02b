/**
 * Getting a join ready before anything connects: the channel key (from a link, this device or a
 * passphrase) made into the channel's cryptography, and what the device remembers of the join.
 */
import { type ChannelCrypto, createChannelCrypto } from '../../shared/crypto/channel-crypto.js';
import { type JoinParams, keyFor, rememberRecent, saveName, storeKey } from './config.js';
import type { JoinForm } from './join-form.js';
import { showJoinedLink } from './link.js';
import { refOf, storage, tabStorage } from './store.js';

/** The join with its key in place of any passphrase, or null after the join form has said why not. */
export async function prepareJoin(params: JoinParams, form: JoinForm): Promise<{ params: JoinParams; crypto: ChannelCrypto | null } | null> {
  const keyText = await form.resolveKey(params);
  if (keyText === null) return null;
  let crypto: ChannelCrypto | null = null;
  if (keyText) {
    try {
      crypto = await createChannelCrypto({ channel: params.channel, keys: [keyText] });
    } catch (err) {
      form.show([`Channel key: ${(err as Error).message}`]);
      return null;
    }
    // From here on the key (never a passphrase) is what the page holds: for this tab, and on the
    // device only if the person ticked "remember" for this channel before (then a new key replaces it).
    params = { ...params, secret: { kind: 'key', key: keyText } };
    storeKey(tabStorage, refOf(params), keyText);
    if (keyFor(storage, refOf(params))) storeKey(storage, refOf(params), keyText);
  }
  saveName(storage, params.name);
  rememberRecent(storage, { broker: params.broker, channel: params.channel, prefix: params.prefix, ...(crypto ? { encrypted: true } : {}) }, Date.now());
  showJoinedLink(params);
  return { params, crypto };
}
