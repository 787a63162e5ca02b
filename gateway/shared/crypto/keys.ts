/**
 * Channel keys (docs/security.md): a random 256-bit key per key epoch, written `<epoch>.<base64url>`
 * so one string in an invite link, a config file or a QR code carries both; or a key derived from a
 * passphrase. Isomorphic: only WebCrypto, shared by the gateway and the browser client.
 */

export const KEY_BYTES = 32;
/**
 * PBKDF2-HMAC-SHA256, because WebCrypto has no scrypt or Argon2 (a browser must derive the same key).
 * 600,000 iterations is OWASP's 2023 figure for PBKDF2-SHA256: ~0.3 s on a laptop, a few seconds on a
 * Pi Zero, once per join. A passphrase is still far weaker than a random key: invites are preferred.
 */
export const PBKDF2_ITERATIONS = 600_000;
const SALT_LABEL = 'talkbridge/v1 passphrase salt';

export interface ChannelKey {
  /** Key epoch (0..65535), carried in every packet header so receivers pick the right key. */
  epoch: number;
  raw: Uint8Array;
}

export class KeyError extends Error {
  override name = 'KeyError';
}

const subtle = () => {
  const s = globalThis.crypto?.subtle;
  // Browsers hide WebCrypto outside secure contexts (plain http:// on a LAN address).
  if (!s) throw new KeyError('WebCrypto is not available here (a browser needs HTTPS or localhost for encrypted channels)');
  return s;
};
export { subtle as webcrypto };

export function toBase64Url(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new KeyError('not base64url');
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function generateKey(epoch = 1): ChannelKey {
  checkEpoch(epoch);
  return { epoch, raw: globalThis.crypto.getRandomValues(new Uint8Array(KEY_BYTES)) };
}

export function formatKey(k: ChannelKey): string {
  return `${k.epoch}.${toBase64Url(k.raw)}`;
}

/** Parses `<epoch>.<base64url of 32 bytes>`; the message never echoes the key itself. */
export function parseKey(text: string): ChannelKey {
  const m = /^(\d{1,5})\.([A-Za-z0-9_-]{43})$/.exec(text.trim());
  if (!m) throw new KeyError('a channel key looks like "1." followed by 43 base64url characters (as `talkbridge channel new` prints it)');
  const epoch = Number(m[1]);
  checkEpoch(epoch);
  const raw = fromBase64Url(m[2]!);
  if (raw.length !== KEY_BYTES) throw new KeyError(`a channel key is ${KEY_BYTES} bytes`);
  return { epoch, raw };
}

function checkEpoch(epoch: number): void {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff) throw new KeyError(`key epoch ${epoch} is outside 0..65535`);
}

/**
 * The salt is per channel rather than random so that a team needs only the channel name and the
 * passphrase (nothing else to pass around); it still stops one precomputed table serving every channel.
 */
export async function keyFromPassphrase(channel: string, passphrase: string, epoch = 1, iterations = PBKDF2_ITERATIONS): Promise<ChannelKey> {
  checkEpoch(epoch);
  if (passphrase.length < 12) throw new KeyError('a channel passphrase must have at least 12 characters (better: several random words)');
  const enc = new TextEncoder();
  const salt = new Uint8Array(await subtle().digest('SHA-256', enc.encode(`${SALT_LABEL}\0${channel}`)));
  const base = await subtle().importKey('raw', enc.encode(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveBits']);
  const bits = await subtle().deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, base, KEY_BYTES * 8);
  return { epoch, raw: new Uint8Array(bits) };
}
