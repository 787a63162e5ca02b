/**
 * Replay rejection for authenticated input (docs/security.md, "Replay"). The broker can store and
 * resend anything it relays; encryption alone would let it play yesterday's over on the air again.
 * Checked only after a packet authenticates, so forged input cannot poison this state.
 *
 *  - stale: the sender's capture timestamp is further from our wall clock than maxSkewMs (0 = off,
 *    for kits whose clocks cannot be trusted; the checks below still hold);
 *  - per stream: a sliding window of the last 64 sequence numbers, as in IPsec/DTLS;
 *  - per sender: an over older than the newest one we have seen from that sender (less a little slack
 *    for clock noise) is a replay of an old stream, even if this receiver never saw it.
 */

import type { ReplayVerdict } from '../channel/sealer.js';

export interface ReplayOptions {
  maxSkewMs: number;
  /** How far an over may start before the sender's newest known over. */
  slackMs?: number;
}

const WINDOW = 64n;
const MAX_STREAMS_PER_SENDER = 32;
const MAX_SENDERS = 1024;
const MAX_NONCES = 256;
/** A stream known only from a saved snapshot: every sequence number falls behind the window. */
const FINISHED = 2 ** 32 + 64;

interface StreamState {
  top: number;
  mask: bigint;
}

interface SenderState {
  newestStart: number;
  streams: Map<string, StreamState>;
  nonces: Set<string>;
}

export class ReplayGuard {
  private readonly senders = new Map<string, SenderState>();
  private readonly slackMs: number;

  constructor(private readonly o: ReplayOptions) {
    this.slackMs = o.slackMs ?? 5000;
  }

  stale(timestamp: number, now: number): boolean {
    return this.o.maxSkewMs > 0 && Math.abs(now - timestamp) > this.o.maxSkewMs;
  }

  private state(sender: string): SenderState {
    let s = this.senders.get(sender);
    if (!s) {
      s = { newestStart: -Infinity, streams: new Map(), nonces: new Set() };
      this.senders.set(sender, s);
      if (this.senders.size > MAX_SENDERS) this.senders.delete(this.senders.keys().next().value as string);
    }
    return s;
  }

  /** An authenticated audio packet: seq within over `stream` that started at `start` (sender clock). */
  packet(sender: string, stream: string, start: number, seq: number, timestamp: number, now: number): ReplayVerdict {
    if (this.stale(timestamp, now)) return 'stale';
    const st = this.stream(this.state(sender), stream, start);
    if (!st) return 'replay';
    if (seq > st.top) {
      const shift = BigInt(seq - st.top);
      st.mask = shift >= WINDOW ? 1n : ((st.mask << shift) | 1n) & ((1n << WINDOW) - 1n);
      st.top = seq;
      return null;
    }
    const back = BigInt(st.top - seq);
    if (back >= WINDOW) return 'replay';
    const bit = 1n << back;
    if (st.mask & bit) return 'replay';
    st.mask |= bit;
    return null;
  }

  /** The start of an over announced on the control topic (authenticated). */
  overStart(sender: string, stream: string, start: number, now: number): ReplayVerdict {
    if (this.stale(start, now)) return 'stale';
    const st = this.stream(this.state(sender), stream, start);
    return !st || st.top === FINISHED ? 'replay' : null;
  }

  /**
   * Is `stream` an over of `sender` we know from authenticated input (its START, or a packet) and
   * not merely from a saved snapshot? Read-only: the derivation budget lets such overs through.
   */
  announced(sender: string, stream: string): boolean {
    const st = this.senders.get(sender)?.streams.get(stream);
    return st !== undefined && st.top !== FINISHED;
  }

  /** A stream's window; a stream new to us is admitted only if it is not older than the sender's newest over. */
  private stream(s: SenderState, stream: string, start: number): StreamState | null {
    const known = s.streams.get(stream);
    if (known) return known;
    if (start < s.newestStart - this.slackMs) return null;
    const st = { top: -1, mask: 0n };
    s.streams.set(stream, st);
    if (s.streams.size > MAX_STREAMS_PER_SENDER) s.streams.delete(s.streams.keys().next().value as string);
    if (start > s.newestStart) s.newestStart = start;
    return st;
  }

  /**
   * Each sender's newest over start, to be kept across restarts: a gateway that restarted would
   * otherwise accept, within the clock-skew window, replays of overs it had already heard.
   */
  snapshot(): Record<string, { newest: number; streams: string[] }> {
    const out: Record<string, { newest: number; streams: string[] }> = {};
    for (const [sender, s] of this.senders) if (Number.isFinite(s.newestStart)) out[sender] = { newest: s.newestStart, streams: [...s.streams.keys()] };
    return out;
  }

  /**
   * Takes back a snapshot: the streams in it count as finished (every packet of them is a replay).
   * Entries older than the skew window protect nothing more and are dropped.
   */
  restore(snap: unknown, now: number): number {
    if (typeof snap !== 'object' || snap === null) return 0;
    let n = 0;
    for (const [sender, v] of Object.entries(snap as Record<string, unknown>)) {
      const e = v as { newest?: unknown; streams?: unknown };
      if (typeof e !== 'object' || e === null || typeof e.newest !== 'number' || !Number.isFinite(e.newest) || sender.length > 64) continue;
      if (this.o.maxSkewMs > 0 && e.newest < now - this.o.maxSkewMs) continue;
      const s = this.state(sender);
      if (e.newest > s.newestStart) s.newestStart = e.newest;
      if (Array.isArray(e.streams)) {
        for (const id of e.streams.slice(-MAX_STREAMS_PER_SENDER)) if (typeof id === 'string' && !s.streams.has(id)) s.streams.set(id, { top: FINISHED, mask: 0n });
      }
      n++;
    }
    return n;
  }

  /** An authenticated control message with its random nonce and send time. */
  control(sender: string, nonce: string, timestamp: number, now: number): ReplayVerdict {
    if (this.stale(timestamp, now)) return 'stale';
    const s = this.state(sender);
    if (s.nonces.has(nonce)) return 'replay';
    s.nonces.add(nonce);
    if (s.nonces.size > MAX_NONCES) s.nonces.delete(s.nonces.values().next().value as string);
    return null;
  }
}
