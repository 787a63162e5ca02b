/**
 * The one function that makes a broker URL fit to show: every `scheme://user:password@` loses its
 * `user:password@` (the whole userinfo, user name included). Used wherever a URL leaves the process:
 * the retained status topic (and its copy upstream), /healthz, logs, the command line's output and
 * `check-config --print`.
 *
 * Why the user name goes too: some brokers take a token as the user name (an access token with an
 * empty password), and a login name in a retained, world-readable status document tells an outsider
 * which account to attack. The login is configured apart (broker.username) and shown from there.
 *
 * It works on any text, not only on a lone URL, so an error message that quotes a URL (MQTT.js,
 * net/connect.ts) can be passed through it whole. The userinfo is everything up to the last `@`
 * before the host part ends (`/`, `?`, `#` or white space), which is how WHATWG URL parsing reads
 * an unescaped `@` in a password: a password is never left half shown.
 */
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;

export function redactUrl<T extends string | null | undefined>(text: T): T {
  return (typeof text === 'string' ? text.replace(USERINFO, '$1') : text) as T;
}

/** True when a URL carries a password (`user:password@`), which talkbridge refuses in configs and flags. */
export function urlHasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    // Not parseable: assume the worst if anything sits before an `@` in the host part.
    return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*:[^/?#]*@/i.test(url);
  }
}
