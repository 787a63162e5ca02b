/**
 * Broker credentials and TLS material, read from files when a connection is set up (not when the
 * config is parsed: `check-config --json` hands the parsed config to another process, and a
 * password that was never read cannot end up in it). Errors name the setting and the path.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../core/errors.js';

export interface TlsOptions {
  /** PEM. When set, only this CA is trusted (it replaces the system store: pinning). */
  ca?: Buffer;
  /** PEM client certificate and its key, for brokers that require one. */
  cert?: Buffer;
  key?: Buffer;
  /** Default true; false accepts any certificate (testing only: anyone can sit in the middle). */
  rejectUnauthorized?: boolean;
  /** Name to verify the broker's certificate against, when it differs from the URL's host. */
  servername?: string;
}

export interface CredentialSources {
  username?: string;
  password?: string;
  passwordFile?: string;
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean; servername?: string };
}

/** How a setting is called where the user gave it: `broker.tls.ca` in a config, `--ca` on the command line. */
export type Namer = (key: 'password' | 'passwordFile' | 'ca' | 'cert' | 'key') => string;
export const configNames =
  (section: string): Namer =>
  (k) =>
    k === 'password' || k === 'passwordFile' ? `${section}.${k}` : `${section}.tls.${k}`;

function readSecret(file: string, name: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`${name}: cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? (err as Error).message)}`);
  }
}

function pem(file: string, name: string, what: string, marker: RegExp): Buffer {
  const b = readSecret(file, name, what);
  if (!marker.test(b.toString('latin1'))) throw new UserError(`${name}: ${file} is not a PEM ${what} (no "-----BEGIN …" block)`);
  return b;
}

export interface Credentials {
  username?: string;
  password?: string;
  tls?: TlsOptions;
}

export function loadCredentials(s: CredentialSources, name: Namer): Credentials {
  if (s.password !== undefined && s.passwordFile !== undefined) throw new UserError(`give only one of ${name('password')}, ${name('passwordFile')}`);
  const out: Credentials = {};
  if (s.username !== undefined) out.username = s.username;
  if (s.password !== undefined) out.password = s.password;
  if (s.passwordFile !== undefined) {
    // A trailing newline is an editor's, not part of the password.
    out.password = readSecret(s.passwordFile, name('passwordFile'), 'password file')
      .toString('utf8')
      .replace(/\r?\n$/, '');
    if (out.password === '') throw new UserError(`${name('passwordFile')}: ${s.passwordFile} is empty`);
  }
  const t = s.tls;
  if (t) {
    if ((t.cert === undefined) !== (t.key === undefined))
      throw new UserError(`${t.cert === undefined ? name('key') : name('cert')} needs ${t.cert === undefined ? name('cert') : name('key')} too: a client certificate goes with its key`);
    const tls: TlsOptions = { rejectUnauthorized: t.rejectUnauthorized ?? true };
    if (t.ca !== undefined) tls.ca = pem(t.ca, name('ca'), 'CA certificate', /-----BEGIN CERTIFICATE-----/);
    if (t.cert !== undefined) tls.cert = pem(t.cert, name('cert'), 'certificate', /-----BEGIN CERTIFICATE-----/);
    if (t.key !== undefined) tls.key = pem(t.key, name('key'), 'private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
    if (t.servername !== undefined) tls.servername = t.servername;
    out.tls = tls;
  }
  return out;
}

/**
 * One line for a failed TLS handshake, naming the likely wrong setting. Node's OpenSSL codes:
 * https://nodejs.org/api/errors.html#openssl-error-codes (and tls.checkServerIdentity's).
 */
export function describeTlsError(err: NodeJS.ErrnoException): string | null {
  const code = err.code ?? '';
  if (
    [
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'UNABLE_TO_GET_ISSUER_CERT',
      'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'CERT_SIGNATURE_FAILURE',
    ].includes(code)
  )
    return 'certificate not trusted — wrong CA? (broker.tls.ca, --ca)';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `certificate is for another name — wrong host, or set broker.tls.servername / --servername (${err.message})`;
  if (code === 'CERT_HAS_EXPIRED') return "the broker's certificate has expired";
  if (code === 'CERT_NOT_YET_VALID') return "the broker's certificate is not valid yet (is this machine's clock right?)";
  if (code === 'EPROTO' || code === 'ECONNRESET' || /alert|handshake|certificate required/i.test(err.message)) {
    if (/certificate required|alert number 116|handshake failure|alert bad certificate|alert unknown ca/i.test(err.message))
      return `the broker refused the TLS handshake — it may require a client certificate (broker.tls.cert/key, --cert/--key) or not trust ours (${err.message.split('\n')[0]})`;
    if (/wrong version number|packet length too long|http request/i.test(err.message)) return 'the broker does not speak TLS on this port — mqtt:// instead of mqtts://, or the wrong port?';
  }
  return null;
}
