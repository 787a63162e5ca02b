/** The `http` config section: the web client, /healthz, /metrics and MQTT over WebSocket. */
import { z } from 'zod';
import { host, port } from '../core/schema.js';
import { TlsFileError, loadTls } from './tls.js';

/**
 * HTTPS for the web port (docs/operations.md, "Field kit over HTTPS"): phones on a kit's Wi-Fi
 * get the microphone and WebCrypto only in a secure context. Paths, as `talkbridge tls init` prints them.
 */
export const HttpTlsSchema = z
  .strictObject({
    cert: z.string().min(1),
    key: z.string().min(1),
    /** The team CA: served as /ca.crt for phones to install. */
    ca: z.string().min(1).optional(),
  })
  .superRefine((t, ctx) => {
    try {
      loadTls(t);
    } catch (err) {
      if (!(err instanceof TlsFileError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message, path: [err.field] });
    }
  });

export const HttpSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    host: host.default('127.0.0.1'),
    /** Serves the web client, /healthz and MQTT over WebSocket on /mqtt (HTTPS and wss when tls is set). */
    port: port.default(8080),
    tls: HttpTlsSchema.nullable().default(null),
    /** Plain HTTP: the team CA (/ca.crt), how to install it, and a redirect to HTTPS for everything else. */
    redirectPort: port.nullable().default(null),
  })
  .superRefine((h, ctx) => {
    if (h.redirectPort !== null && h.tls === null) ctx.addIssue({ code: 'custom', message: 'redirectPort needs http.tls (it redirects to HTTPS)', path: ['redirectPort'] });
    if (h.redirectPort !== null && h.redirectPort === h.port) ctx.addIssue({ code: 'custom', message: `redirectPort must differ from port (${h.port})`, path: ['redirectPort'] });
  })
  .prefault({});

export type HttpConfig = z.infer<typeof HttpSchema>;
export type HttpTlsConfig = z.infer<typeof HttpTlsSchema>;
