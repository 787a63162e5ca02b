/**
 * Schemas for radio hardware settings, the interface profiles and channel plans in firmware-config/,
 * and the merge of a `radios:` entry over its profile. Users pick a profile by name and override
 * only what differs (the hidraw path, a pin); the result is validated as a whole, with paths.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { packagePath } from '../core/paths.js';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { ModuleChannel, ModuleSettings, Tone } from './types.js';
import { CTCSS, checkChannel, parseDcs } from './module/tones.js';

const gpioLine = z.number().int().min(0).max(63);
// A hung daemon must not hold the transmitter: the guard unkeys within watchdogMs + 25 ms of the last heartbeat.
const watchdogMs = z
  .number()
  .int()
  .refine((n) => n === 0 || (n >= 100 && n <= 60000), 'must be 0 (off) or 100-60000')
  .default(150);
const device = z.string().min(1);
const bias = z.enum(['as-is', 'pull-up', 'pull-down', 'disable']).default('as-is');

export const PttSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({
    type: z.literal('gpio'),
    /** chardev: libgpiod tools (current kernels); sysfs: onoff (older images). */
    api: z.enum(['chardev', 'sysfs']).default('chardev'),
    line: gpioLine,
    activeLow: z.boolean().default(false),
    /** Chip label; default: the Pi header controller (pinctrl-rp1 / -bcm2711 / -bcm2835). */
    chip: z.string().min(1).optional(),
    watchdogMs,
  }),
  z.strictObject({
    type: z.literal('serial'),
    device,
    line: z.enum(['rts', 'dtr']).default('rts'),
    activeLow: z.boolean().default(false),
    /** Level held on the other control line. */
    other: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal('cm108'),
    /** /dev/hidrawN, or auto: the first known CM108/AIOC interface. */
    device: device.default('auto'),
    gpio: z.number().int().min(1).max(8).default(3),
    activeLow: z.boolean().default(false),
    watchdogMs,
  }),
  z.strictObject({
    type: z.literal('command'),
    key: z.string().min(1),
    unkey: z.string().min(1),
    timeoutMs: z.number().int().min(100).max(60000).default(5000),
    watchdogMs,
  }),
]);

const cosCommon = {
  invert: z.boolean().default(false),
  debounceMs: z.number().int().min(0).max(2000).default(20),
};

export const CosSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({ type: z.literal('gpio'), api: z.enum(['chardev', 'sysfs']).default('chardev'), line: gpioLine, chip: z.string().min(1).optional(), bias, ...cosCommon }),
  z.strictObject({ type: z.literal('serial'), device, line: z.enum(['cts', 'dsr', 'dcd']).default('cts'), pollMs: z.number().int().min(5).max(1000).default(20), ...cosCommon }),
  z.strictObject({
    type: z.literal('cm108'),
    device: device.default('auto'),
    /** Input bit: 1 = Volume Down (COS on URI-style boards), 0 = Volume Up (CTCSS decode). */
    bit: z.number().int().min(0).max(7).default(1),
    byte: z.number().int().min(0).max(7).default(0),
    reportBytes: z.number().int().min(1).max(64).default(4),
    ...cosCommon,
  }),
  z.strictObject({
    type: z.literal('vox'),
    thresholdDb: z.number().min(-90).max(0).default(-40),
    attackMs: z.number().int().min(0).max(2000).default(60),
    hangMs: z.number().int().min(0).max(10000).default(600),
  }),
]);

/** ALSA names only: card ids keep working when plug order changes, card numbers do not. */
const alsaDevice = z.string().regex(/^[\w:=,.\-/]+$/, 'must be an ALSA device name such as plughw:CARD=Device,DEV=0');
const alsaCommon = {
  periodFrames: z.number().int().min(32).max(65536).optional(),
  bufferFrames: z.number().int().min(64).max(262144).optional(),
  gainDb: z.number().min(-40).max(40).default(0),
};

export const AudioInSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({ type: z.literal('alsa'), device: alsaDevice, ...alsaCommon }),
  z.strictObject({ type: z.literal('file'), path: z.string().min(1), loop: z.boolean().default(false), gainDb: alsaCommon.gainDb }),
]);

export const AudioOutSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('null') }),
  z.strictObject({ type: z.literal('alsa'), device: alsaDevice, ...alsaCommon }),
  z.strictObject({ type: z.literal('file'), path: z.string().min(1), gainDb: alsaCommon.gainDb }),
]);

export const AudioSchema = z.strictObject({
  sampleRate: z
    .union([z.literal(8000), z.literal(16000), z.literal(22050), z.literal(24000), z.literal(32000), z.literal(44100), z.literal(48000)], {
      error: 'must be 8000, 16000, 22050, 24000, 32000, 44100 or 48000',
    })
    .default(48000),
  input: AudioInSchema.default({ type: 'none' }),
  output: AudioOutSchema.default({ type: 'null' }),
});

const filters = z.strictObject({ emphasis: z.boolean().default(true), highpass: z.boolean().default(true), lowpass: z.boolean().default(true) });

export const ModuleSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({
    type: z.literal('sa818'),
    port: device,
    baudRate: z.number().int().default(9600),
    /** Channel plan name and channel number to program. */
    plan: z.string().min(1).optional(),
    channel: z.number().int().min(1).optional(),
  }),
]);

export type PttConfig = z.infer<typeof PttSchema>;
export type CosConfig = z.infer<typeof CosSchema>;
export type AudioConfig = z.infer<typeof AudioSchema>;
export type ModuleConfig = z.infer<typeof ModuleSchema>;

export const InterfaceProfileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  description: z.string().min(1),
  /** USB ids that identify this interface in `talkbridge devices`. */
  usb: z.array(z.strictObject({ vid: z.string().regex(/^[0-9a-f]{4}$/), pid: z.string().regex(/^[0-9a-f]{4}$/) })).default([]),
  ptt: PttSchema,
  cos: CosSchema.default({ type: 'none' }),
  audio: AudioSchema.prefault({}),
  module: ModuleSchema.default({ type: 'none' }),
  notes: z.string().optional(),
});
export type InterfaceProfile = z.infer<typeof InterfaceProfileSchema>;

/** A tone as written in YAML: 88.5 (CTCSS Hz), "023N" / "D023I" (DCS), or none. */
const ToneInput = z.union([z.number(), z.string(), z.null()]).transform((v, ctx): Tone => {
  if (v === null || v === 'none') return null;
  if (typeof v === 'number' || /^\d+(\.\d+)?$/.test(v)) {
    const hz = Number(v);
    if (!CTCSS.some((t) => Math.abs(t - hz) < 0.05)) ctx.addIssue({ code: 'custom', message: `${hz} Hz is not a standard CTCSS tone` });
    return { ctcss: hz };
  }
  try {
    return parseDcs(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return null;
  }
});

const channelDefaults = {
  bandwidth: z.enum(['wide', 'narrow']).optional(),
  squelch: z.number().int().min(0).max(8).optional(),
};

export const ChannelPlanSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
    description: z.string().min(1),
    notes: z.string().optional(),
    defaults: z
      .strictObject({
        bandwidth: z.enum(['wide', 'narrow']).default('narrow'),
        squelch: z.number().int().min(0).max(8).default(1),
        volume: z.number().int().min(1).max(8).default(6),
        filters: filters.prefault({}),
        tail: z.boolean().default(false),
      })
      .prefault({}),
    channels: z
      .array(
        z
          .strictObject({
            number: z.number().int().min(1),
            name: z.string().min(1),
            rx: z.number(),
            /** Default: simplex (= rx). */
            tx: z.number().optional(),
            /** Both directions; rxTone / txTone override one side. */
            tone: ToneInput.optional(),
            rxTone: ToneInput.optional(),
            txTone: ToneInput.optional(),
            ...channelDefaults,
          })
          // Checked per channel so a bad tone and a bad frequency are reported in the same run.
          .superRefine((c, ctx) => {
            try {
              checkChannel({ rxMHz: c.rx, txMHz: c.tx ?? c.rx, rxTone: null, txTone: null, squelch: 0, bandwidth: 'narrow' });
            } catch (err) {
              ctx.addIssue({ code: 'custom', message: (err as Error).message });
            }
          }),
      )
      .min(1),
  })
  .superRefine((p, ctx) => {
    const seen = new Set<number>();
    p.channels.forEach((c, i) => {
      if (seen.has(c.number)) ctx.addIssue({ code: 'custom', message: `channel ${c.number} appears twice`, path: ['channels', i, 'number'] });
      seen.add(c.number);
    });
  });
export type ChannelPlan = z.infer<typeof ChannelPlanSchema>;

export function planChannel(p: Pick<ChannelPlan, 'defaults'>, c: ChannelPlan['channels'][number]): ModuleChannel {
  const tone = c.tone ?? null;
  return {
    rxMHz: c.rx,
    txMHz: c.tx ?? c.rx,
    rxTone: c.rxTone !== undefined ? c.rxTone : tone,
    txTone: c.txTone !== undefined ? c.txTone : tone,
    squelch: c.squelch ?? p.defaults.squelch,
    bandwidth: c.bandwidth ?? p.defaults.bandwidth,
  };
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

/** Built-in firmware-config/ plus any directories in TALKBRIDGE_PROFILES (colon-separated), searched first. */
export function profileDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const builtin = packagePath('firmware-config');
  return [...(env.TALKBRIDGE_PROFILES ?? '').split(':').filter(Boolean), builtin];
}

function names(kind: string, dirs: string[]): string[] {
  const out = new Set<string>();
  for (const d of dirs) {
    try {
      for (const f of readdirSync(path.join(d, kind))) if (f.endsWith('.yaml')) out.add(f.slice(0, -5));
    } catch {
      // a missing directory just has no profiles
    }
  }
  return [...out].sort();
}

function load<T>(kind: string, name: string, schema: z.ZodType<T>, dirs: string[]): T {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new ProfileError(`"${name}" is not a profile name (lower-case letters, digits and -)`);
  for (const d of dirs) {
    const file = path.join(d, kind, `${name}.yaml`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const doc = parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length) throw new ProfileError(`${file}: YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    const r = schema.safeParse(doc.toJS());
    if (!r.success) {
      const issues = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
      throw new ProfileError(`${file}: ${issues.join('; ')}`);
    }
    return r.data;
  }
  const have = names(kind, dirs);
  throw new ProfileError(`unknown ${kind === 'interfaces' ? 'interface profile' : 'channel plan'} "${name}" (available: ${have.join(', ') || 'none'})`);
}

export const interfaceNames = (dirs = profileDirs()) => names('interfaces', dirs);
export const planNames = (dirs = profileDirs()) => names('plans', dirs);
export const loadInterface = (name: string, dirs = profileDirs()) => load('interfaces', name, InterfaceProfileSchema, dirs);
export const loadPlan = (name: string, dirs = profileDirs()) => load('plans', name, ChannelPlanSchema, dirs);

/** What programming channel `n` of a plan sends: the channel, and the plan's volume, filters and tail. */
export function planSettings(plan: ChannelPlan, n: number, volume?: number): ModuleSettings {
  const c = plan.channels.find((x) => x.number === n);
  if (!c) throw new Error(`plan ${plan.name} has no channel ${n} (channels ${plan.channels.map((x) => x.number).join(', ')})`);
  return { channel: planChannel(plan, c), volume: volume ?? plan.defaults.volume, filters: plan.defaults.filters, tail: plan.defaults.tail };
}

/**
 * A radio's module as the daemon gets it: with `plan` and `channel` in the config, the settings to
 * program at start, resolved here (in the config check) so that the daemon needs no YAML or plans.
 */
export type ResolvedModule = ModuleConfig & { settings?: ModuleSettings };

export interface ResolvedRadio {
  name: string;
  interface: string | null;
  ptt: PttConfig;
  cos: CosConfig;
  audio: AudioConfig;
  module: ResolvedModule;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Override wins; a section whose `type` changes is replaced, not merged (no stray pins). */
export function mergeSection(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
  if ('type' in over && over.type !== base.type) return over;
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeSection(base[k], v);
  return out;
}

export const RadioEntrySchema = z.strictObject({
  /** 1-32 letters, digits, - or _ (checked in resolveRadio, so other problems are reported too). */
  name: z.string(),
  /** Interface profile from firmware-config/interfaces (aioc, digirig, cm108-uri, pi-gpio, sa818-hat). */
  interface: z.string().optional(),
  ptt: z.record(z.string(), z.unknown()).optional(),
  cos: z.record(z.string(), z.unknown()).optional(),
  audio: z.record(z.string(), z.unknown()).optional(),
  module: z.record(z.string(), z.unknown()).optional(),
});
export type RadioEntry = z.infer<typeof RadioEntrySchema>;

/** Entry + its profile → a validated radio; problems are added to ctx with their paths. */
export function resolveRadio(e: RadioEntry, ctx: { addIssue(i: { code: 'custom'; message: string; path?: PropertyKey[] }): void }, dirs = profileDirs()): ResolvedRadio {
  let base: Obj = {};
  if (!/^[A-Za-z0-9][\w-]{0,31}$/.test(e.name)) ctx.addIssue({ code: 'custom', message: 'must be 1-32 letters, digits, - or _', path: ['name'] });
  if (e.interface !== undefined) {
    try {
      base = loadInterface(e.interface, dirs) as unknown as Obj;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message, path: ['interface'] });
    }
  }
  const out: Obj = { name: e.name, interface: e.interface ?? null };
  const sections: Array<[keyof ResolvedRadio, z.ZodType, unknown]> = [
    ['ptt', PttSchema, undefined],
    ['cos', CosSchema, { type: 'none' }],
    ['audio', AudioSchema, {}],
    ['module', ModuleSchema, { type: 'none' }],
  ];
  for (const [key, schema, fallback] of sections) {
    const merged = mergeSection(base[key], e[key as 'ptt']) ?? fallback;
    if (merged === undefined) {
      ctx.addIssue({ code: 'custom', message: `required: name an interface profile or give ptt.type (none, gpio, serial, cm108, command)`, path: [key] });
      continue;
    }
    const r = schema.safeParse(merged);
    if (r.success) out[key] = r.data;
    else for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: [key, ...i.path] });
  }
  const m = out.module as ModuleConfig | undefined;
  if (m?.type === 'sa818' && (m.plan !== undefined || m.channel !== undefined)) {
    if (m.plan === undefined || m.channel === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'plan and channel go together (e.g. plan: pmr446, channel: 1); leave both out to keep what the module holds',
        path: ['module', m.plan === undefined ? 'plan' : 'channel'],
      });
    } else {
      const issue = (key: 'plan' | 'channel', err: unknown) => ctx.addIssue({ code: 'custom', message: (err as Error).message, path: ['module', key] });
      let plan: ChannelPlan | null = null;
      try {
        plan = loadPlan(m.plan, dirs);
      } catch (err) {
        issue('plan', err);
      }
      try {
        if (plan) out.module = { ...m, settings: planSettings(plan, m.channel) };
      } catch (err) {
        issue('channel', err);
      }
    }
  }
  return out as unknown as ResolvedRadio;
}
