/**
 * What a session on an encrypted channel needs from its keys (docs/security.md): seal what it
 * sends, refuse cheaply what cannot be genuine before it is queued, open what arrives, and
 * remember overs so that a replayed one is refused. crypto/channel-crypto.ts is the one
 * implementation; channel/ depends on this interface and the crypto code on channel/'s wire
 * format, not both ways.
 */
import type { AudioPacket, PacketHeader } from './packet.js';

/** First byte of a sealed control or presence message (docs/protocol.md). */
export const ENVELOPE_V1 = 0xe1;

/**
 * Why input on an encrypted channel was refused; counted by reason like any malformed input.
 * `oversize`: longer than any legitimate packet or envelope; `budget`: a new over's key derivation
 * refused by the derivation budget.
 */
export type CryptoDrop = 'unencrypted' | 'unknown-epoch' | 'old-epoch' | 'auth' | 'sender-mismatch' | 'replay' | 'stale' | 'envelope' | 'oversize' | 'budget';

export interface Refusal {
  reason: CryptoDrop;
  detail: string;
}

export type Opened<T> = { ok: true; value: T } | ({ ok: false } & Refusal);

export type ReplayVerdict = null | 'replay' | 'stale';

export type SealedKind = 'control' | 'presence';

export interface Sealer {
  /** The channel these keys are for. */
  readonly channel: string;
  readonly replay: {
    /** An authenticated START announced this over. */
    announced(sender: string, stream: string): boolean;
    overStart(sender: string, stream: string, start: number, now: number): ReplayVerdict;
  };
  /** The sender has authenticated before (it holds the key). */
  isTrusted(sender: string): boolean;
  sealAudio(sender: string, header: Omit<PacketHeader, 'version' | 'frameCount' | 'keyEpoch'>, frames: readonly Uint8Array[], now?: number): Promise<Uint8Array>;
  precheckAudio(p: AudioPacket, now: number): Refusal | null;
  openAudio(sender: string, p: AudioPacket, now?: number): Promise<Opened<Uint8Array[]>>;
  sealMessage(kind: SealedKind, sender: string, json: Uint8Array, now?: number): Promise<Uint8Array>;
  precheckMessage(kind: SealedKind, payload: Uint8Array, now: number): Refusal | null;
  openMessage(kind: SealedKind, sender: string, payload: Uint8Array, now?: number): Promise<Opened<Uint8Array>>;
}
