/**
 * Service worker: keeps the app shell (page, scripts, styles, icons, the Opus WASM) so the client
 * opens with no internet — a field kit's own Wi-Fi — once it has been opened once. Each build has
 * its own cache, filled completely before it takes over, so a page never mixes files of two
 * builds. MQTT traffic is a WebSocket and never passes through here.
 */
declare const SHELL_VERSION: string;
declare const SHELL_FILES: string[];

interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request;
  respondWith(r: Response | Promise<Response>): void;
}
interface SwScope {
  registration: { scope: string };
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  addEventListener(type: 'install' | 'activate', fn: (e: ExtendableEvent) => void): void;
  addEventListener(type: 'fetch', fn: (e: FetchEvent) => void): void;
}

const sw = self as unknown as SwScope;
const CACHE = `talkbridge-shell-${SHELL_VERSION}`;
const scope = new URL(sw.registration.scope);
const shell = new Set(SHELL_FILES.map((f) => new URL(f, scope).href));

sw.addEventListener('install', (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll([...shell].map((u) => new Request(u, { cache: 'reload' }))))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener('activate', (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('talkbridge-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  url.hash = '';
  url.search = '';
  // Navigations inside the scope are the app page, whatever path they name.
  const key = req.mode === 'navigate' && url.href.startsWith(scope.href) ? new URL('./', scope).href : url.href;
  if (!shell.has(key)) return;
  e.respondWith(
    caches.open(CACHE).then(async (c) => {
      const hit = await c.match(key);
      if (hit) return hit;
      const res = await fetch(req);
      if (res.ok) void c.put(key, res.clone());
      return res;
    }),
  );
});
