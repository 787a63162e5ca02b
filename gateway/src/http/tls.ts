/**
 * The HTTPS material of the web port: the server certificate and key (and the team CA phones
 * install), read and checked together so a wrong file is named before anything listens.
 * Used by the config schema (check-config reports it with its path) and again by the server at
 * start, since the files may change between the two.
 */
import { X509Certificate, createPrivateKey, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface TlsPaths {
  cert: string;
  key: string;
  ca?: string | undefined;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** The CA file exactly as it is on disk: /ca.crt serves these bytes. */
  ca: Buffer | null;
  leaf: X509Certificate;
  caCert: X509Certificate | null;
}

/** A problem with one of the files; `field` is the config key it came from. */
export class TlsFileError extends Error {
  constructor(
    readonly field: keyof TlsPaths,
    message: string,
  ) {
    super(message);
  }
}

function read(field: keyof TlsPaths, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (the daemon runs as its own user: chown it or chmod it readable)' : (code ?? (err as Error).message);
    throw new TlsFileError(field, `cannot read ${path}: ${why}`);
  }
}

function certificate(field: keyof TlsPaths, path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new TlsFileError(field, `${path} is not a PEM certificate`);
  }
}

export function loadTls(p: TlsPaths): TlsMaterial {
  const cert = read('cert', p.cert);
  const key = read('key', p.key);
  const leaf = certificate('cert', p.cert, cert);
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    const msg = (err as Error).message;
    throw new TlsFileError('key', `${p.key} is not a usable private key${/passphrase/i.test(msg) ? ' (it is encrypted: talkbridge needs it without a passphrase)' : ' (PEM, unencrypted)'}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new TlsFileError('key', `${p.key} is not the key of ${p.cert} (they do not match: re-run talkbridge tls init, or point both at the same pair)`);
  if (leaf.ca) throw new TlsFileError('cert', `${p.cert} is a CA certificate: give the server certificate (server.crt), and the CA as http.tls.ca`);
  let ca: Buffer | null = null;
  let caCert: X509Certificate | null = null;
  if (p.ca !== undefined) {
    ca = read('ca', p.ca);
    caCert = certificate('ca', p.ca, ca);
    if (!caCert.ca) throw new TlsFileError('ca', `${p.ca} is not a CA certificate (basicConstraints CA:FALSE)`);
    if (!leaf.checkIssued(caCert) || !leaf.verify(caCert.publicKey)) throw new TlsFileError('ca', `${p.cert} was not issued by ${p.ca}: phones that install this CA would still refuse the server`);
  }
  return { cert, key, ca, leaf, caCert };
}

/** SHA-256 of the certificate, as browsers and `openssl x509 -fingerprint -sha256` show it. */
export function fingerprint(c: X509Certificate): string {
  return c.fingerprint256;
}

/** base64 SHA-256 of the SubjectPublicKeyInfo: what HPKP-style pins and Chromium's --ignore-certificate-errors-spki-list take. */
export function spkiSha256(c: X509Certificate): string {
  return createHash('sha256')
    .update(c.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
}

/** The subjectAltName entries: ['DNS:kit.local', 'IP:10.42.0.1', …]. */
export function altNames(c: X509Certificate): string[] {
  const s = c.subjectAltName;
  if (!s) return [];
  return s.split(', ').map((e) => e.replace(/^IP Address:/, 'IP:'));
}
