/**
 * Sharing the joined channel: "Copy link" (an invite link, with the key, on an encrypted channel)
 * and the same link as a QR code for a phone's camera.
 */
import type { JoinedChannel } from './channel.js';
import { $ } from './dom.js';
import { shareUrl } from './link.js';
import type { StatusBar } from './status.js';
import { hook } from './test-hook.js';

export class Share {
  constructor(
    private readonly channel: () => JoinedChannel | null,
    status: Pick<StatusBar, 'banner'>,
  ) {
    $('share').addEventListener('click', () => {
      const joined = channel();
      if (!joined) return;
      const invite = joined.session.encrypted;
      const url = shareUrl(joined.params, invite);
      navigator.clipboard?.writeText(url).then(
        () =>
          status.banner(
            invite ? 'Invite link copied: it holds the channel key — anyone with it can listen and talk, so share it like a password' : 'Link copied: anyone with it can join this channel',
            'info',
          ),
        () => status.banner(url, 'info'),
      ) ?? status.banner(url, 'info');
    });
    $('show-qr').addEventListener('click', () => void this.toggleQr());
  }

  /** On an encrypted channel the link is an invite: it carries the key. */
  render(encrypted: boolean): void {
    $('share').textContent = encrypted ? 'Copy invite link' : 'Copy link';
    if ($('qr-wrap').hidden) $('show-qr').textContent = encrypted ? 'Show invite QR' : 'Show QR';
  }

  hideQr(encrypted: boolean): void {
    $('qr-wrap').hidden = true;
    $('qr').replaceChildren();
    $('show-qr').setAttribute('aria-expanded', 'false');
    $('show-qr').textContent = encrypted ? 'Show invite QR' : 'Show QR';
  }

  /** Draws the share link as a QR code for a phone's camera; the qrcode package loads only when asked. */
  private async toggleQr(): Promise<void> {
    const j = this.channel();
    if (!j) return;
    if (!$('qr-wrap').hidden) return this.hideQr(j.state.crypto.encrypted);
    const url = shareUrl(j.params, j.session.encrypted);
    const { toString: qrCode } = await import('qrcode');
    // Medium error correction: still reads from a scratched or glare-lit phone screen; SVG stays sharp at any size.
    const svg = await qrCode(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    if (this.channel() !== j) return;
    const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
    $('qr').replaceChildren(document.importNode(doc.documentElement, true));
    $('qr').setAttribute('aria-label', j.session.encrypted ? 'QR code of the invite link' : 'QR code of the link');
    $('qr-note').textContent = j.session.encrypted
      ? 'This QR code holds the channel key: anyone who scans it can listen and talk. Show it only to your team, and hide it after.'
      : 'Scan to join this channel.';
    $('qr-wrap').hidden = false;
    $('show-qr').setAttribute('aria-expanded', 'true');
    $('show-qr').textContent = 'Hide QR';
    if (hook) hook.qr = { text: url, svg };
  }
}
