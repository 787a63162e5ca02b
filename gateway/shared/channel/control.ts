/**
 * Control messages (JSON on <channel>/control/<sender>) and presence (JSON, retained).
 * Parsing is strict and total: any input gives either a message or a reason string.
 */

export const SOURCES = ['radio', 'web', 'cli'] as const;
export type Source = (typeof SOURCES)[number];

export const END_REASONS = ['done', 'busy', 'timeout', 'preempted', 'error', 'aborted'] as const;
export type EndReason = (typeof END_REASONS)[number];

export interface StartMessage {
  v: 1;
  type: 'start';
  stream: string;
  /** Over start on the sender's clock, ms since the epoch; equals the timestamp of packet 0. */
  t: number;
  name: string;
  source: Source;
  /** Floor priority, higher wins; 0 for ordinary talkers. */
  priority: number;
  sampleRate: number;
  frameMs: number;
  framesPerPacket: number;
}

export interface EndMessage {
  v: 1;
  type: 'end';
  stream: string;
  reason: EndReason;
  /** Packets sent in the over (lets receivers count trailing loss). */
  packets: number;
}

/** Something every participant should see: a gateway timed out, locked out, lost its radio. */
export interface NoticeMessage {
  v: 1;
  type: 'notice';
  code: string;
  text: string;
}

export type ControlMessage = StartMessage | EndMessage | NoticeMessage;

export interface Presence {
  v: 1;
  name: string;
  source: Source;
  /** ms since the epoch when the client came online. */
  since: number;
  software: string;
  /**
   * ms since the epoch when this announcement was made. Presence is re-announced every few
   * minutes, and one whose `at` (or, from older clients, `since`) is older than PRESENCE_STALE_MS
   * is not believed: a broker re-publishing a departed member's old presence cannot show them online.
   */
  at?: number;
}

/** How often a participant re-announces its presence (ms). */
export const PRESENCE_REFRESH_MS = 5 * 60_000;
/** Presence announced longer ago than this (by the sender's clock) is stale. */
export const PRESENCE_STALE_MS = 15 * 60_000;

const STREAM = /^[0-9a-f]{16}$/;
const MAX_JSON = 2048;
const MAX_NAME = 64;

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

function parseJson(payload: Uint8Array): Parsed<Record<string, unknown>> {
  if (payload.length === 0) return { ok: false, reason: 'empty payload' };
  if (payload.length > MAX_JSON) return { ok: false, reason: `payload of ${payload.length} bytes exceeds ${MAX_JSON}` };
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return { ok: false, reason: 'not UTF-8 JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, reason: 'not a JSON object' };
  return { ok: true, value: v as Record<string, unknown> };
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const isName = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_NAME;

export function parseControl(payload: Uint8Array): Parsed<ControlMessage> {
  const j = parseJson(payload);
  if (!j.ok) return j;
  const m = j.value;
  if (m.v !== 1) return { ok: false, reason: `unknown control version ${String(m.v)}` };
  if (m.type === 'notice') {
    if (typeof m.code !== 'string' || !/^[a-z-]{1,32}$/.test(m.code)) return { ok: false, reason: 'bad notice code' };
    if (typeof m.text !== 'string' || m.text.length > 200) return { ok: false, reason: 'bad notice text' };
    return { ok: true, value: { v: 1, type: 'notice', code: m.code, text: m.text } };
  }
  if (typeof m.stream !== 'string' || !STREAM.test(m.stream)) return { ok: false, reason: 'bad stream id' };
  if (m.type === 'start') {
    if (!isInt(m.t, 0, 2 ** 48 - 1)) return { ok: false, reason: 'bad start time' };
    if (!isName(m.name)) return { ok: false, reason: 'bad name' };
    if (!(SOURCES as readonly unknown[]).includes(m.source)) return { ok: false, reason: 'bad source' };
    if (!isInt(m.priority, 0, 255)) return { ok: false, reason: 'bad priority' };
    if (![8000, 12000, 16000, 24000, 48000].includes(m.sampleRate as number)) return { ok: false, reason: 'bad sample rate' };
    if (![2.5, 5, 10, 20, 40, 60].includes(m.frameMs as number)) return { ok: false, reason: 'bad frame duration' };
    if (!isInt(m.framesPerPacket, 1, 6)) return { ok: false, reason: 'bad frames per packet' };
    return {
      ok: true,
      value: {
        v: 1,
        type: 'start',
        stream: m.stream,
        t: m.t,
        name: m.name,
        source: m.source as Source,
        priority: m.priority,
        sampleRate: m.sampleRate as number,
        frameMs: m.frameMs as number,
        framesPerPacket: m.framesPerPacket,
      },
    };
  }
  if (m.type === 'end') {
    if (!(END_REASONS as readonly unknown[]).includes(m.reason)) return { ok: false, reason: 'bad end reason' };
    if (!isInt(m.packets, 0, 0xffffffff)) return { ok: false, reason: 'bad packet count' };
    return { ok: true, value: { v: 1, type: 'end', stream: m.stream, reason: m.reason as EndReason, packets: m.packets } };
  }
  return { ok: false, reason: `unknown control type ${JSON.stringify(m.type)}` };
}

/** Empty payload = the retained presence was cleared (client left or its Last Will fired). */
export function parsePresence(payload: Uint8Array): Parsed<Presence | null> {
  if (payload.length === 0) return { ok: true, value: null };
  const j = parseJson(payload);
  if (!j.ok) return j;
  const m = j.value;
  if (m.v !== 1) return { ok: false, reason: `unknown presence version ${String(m.v)}` };
  if (!isName(m.name)) return { ok: false, reason: 'bad name' };
  if (!(SOURCES as readonly unknown[]).includes(m.source)) return { ok: false, reason: 'bad source' };
  if (!isInt(m.since, 0, 2 ** 48 - 1)) return { ok: false, reason: 'bad since' };
  if (typeof m.software !== 'string' || m.software.length > MAX_NAME) return { ok: false, reason: 'bad software' };
  if (m.at !== undefined && !isInt(m.at, 0, 2 ** 48 - 1)) return { ok: false, reason: 'bad at' };
  const value: Presence = { v: 1, name: m.name, source: m.source as Source, since: m.since, software: m.software };
  if (m.at !== undefined) value.at = m.at;
  return { ok: true, value };
}

export function encodeJson(m: ControlMessage | Presence): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m));
}
