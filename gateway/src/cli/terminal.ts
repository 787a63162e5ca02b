/**
 * Text from the network, made safe for a terminal. A talker's name, a gateway's status document or
 * a broker's error text is anyone's to write: with an ESC (C0) or CSI (C1) in it, it could move the
 * cursor, rewrite earlier lines, set the window title or, on some terminals, answer back into the
 * shell; with a bidi override it could show text in another order than it is (Trojan Source,
 * CVE-2021-42574). Every such character becomes `?`.
 *
 * Replaced: C0 controls U+0000–U+001F (tab and line feed too, unless `newlines` keeps line feeds),
 * DEL U+007F, C1 controls U+0080–U+009F, the bidi marks, embeddings, overrides and isolates
 * (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the Unicode line and paragraph
 * separators U+2028, U+2029.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
const UNSAFE_BUT_LF = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

export function safeText(text: string, o: { newlines?: boolean } = {}): string {
  return text.replace(o.newlines ? UNSAFE_BUT_LF : UNSAFE, '?');
}
