/** The `bridge` config section: how radios and talk channels are linked, and the timing on the air. */
import { z } from 'zod';

export const BridgeSchema = z
  .strictObject({
    /** Key-up to first audio, so the radio and the far receivers' squelch open before the first syllable (ms). */
    txDelayMs: z.number().int().min(0).max(2000).default(60),
    /** PTT held after an over ends, so back-to-back overs do not re-key (ms). */
    hangMs: z.number().int().min(0).max(10000).default(500),
    /** Time-out timer: longest continuous transmission (s); 0 disables it (not recommended). */
    timeoutSeconds: z.number().int().min(0).max(3600).default(120),
    /** No valid audio this long while keyed → unkey, whatever MQTT thinks of the connection (ms). */
    starvationMs: z.number().int().min(60).max(5000).default(300),
    /**
     * An over whose first audio reaches us later than this compared with how that talker's overs
     * usually arrive (held back by a broker, or behind a backlog) is not transmitted: on the air,
     * late is wrong. Listeners on the channel still hear it (ms).
     */
    maxStartLagMs: z.number().int().min(100).max(60000).default(1000),
    /** Audio held back before sending, dropped when carrier closes: trims a long squelch tail (ms). Costs the same latency. */
    squelchTailMs: z.number().int().min(0).max(500).default(0),
    /** Carrier detect ignored this long after we unkey (our own transmitter's tail) (ms). */
    cosHoldoffMs: z.number().int().min(0).max(5000).default(250),
    /** A carrier that rises within this long after an over ended on the channel is not forwarded (another gateway's hang/tail) (ms). */
    echoGuardMs: z.number().int().min(0).max(10000).default(1500),
    /**
     * A network over arriving while the radio receives: "busy" = not transmitted, "wait" = held and
     * transmitted once the radio is quiet, "preempt" = stop forwarding the radio and transmit it.
     */
    busyPolicy: z.enum(['busy', 'wait', 'preempt']).default('busy'),
    /** With busyPolicy "wait": most audio held for later (s); beyond it the over is dropped. */
    waitMaxSeconds: z.number().int().min(1).max(600).default(60),
    /** Longest radio over forwarded to the channel (s): a stuck squelch must not hold a channel. */
    rxTimeoutSeconds: z.number().int().min(5).max(3600).default(120),
    courtesyTone: z.boolean().default(false),
    cwId: z
      .strictObject({
        /** Your callsign; null = no identification (licence-free services). */
        callsign: z
          .string()
          .regex(/^[A-Za-z0-9/-]{3,16}$/, 'callsign: 3-16 letters, digits, / or -')
          .nullable()
          .default(null),
        intervalMinutes: z.number().min(1).max(120).default(10),
        wpm: z.number().int().min(5).max(40).default(20),
      })
      .prefault({}),
    /** A recorded announcement (WAV), transmitted at the end of a transmission at most every intervalMinutes. */
    announcement: z
      .strictObject({
        file: z.string().min(1).nullable().default(null),
        intervalMinutes: z.number().min(1).max(1440).default(30),
      })
      .prefault({}),
    rxAudio: z
      .strictObject({
        /** High-pass corner keeping CTCSS tones off the channel (Hz); 0 disables. */
        highpassHz: z.number().min(0).max(1000).default(300),
        /** For radios whose audio comes unfiltered from the discriminator. */
        deemphasis: z.boolean().default(false),
        agc: z.boolean().default(true),
        targetDb: z.number().min(-40).max(-6).default(-20),
      })
      .prefault({}),
    txAudio: z
      .strictObject({
        /** Peak ceiling of what goes to the transmitter (dBFS): never over-deviate. */
        limiterDb: z.number().min(-30).max(0).default(-1),
      })
      .prefault({}),
    /** Which radio talks on which channels. Default: every radio transmits to and monitors the first channel. */
    links: z
      .array(
        z.strictObject({
          radio: z.string(),
          /** Overs heard on the radio go to this channel; null = receive-only gateway. */
          transmit: z.string().nullable(),
          /** Overs on these channels are transmitted on the radio. */
          monitor: z.array(z.string()).default([]),
        }),
      )
      .default([]),
  })
  .prefault({});

export type BridgeConfig = z.infer<typeof BridgeSchema>;
