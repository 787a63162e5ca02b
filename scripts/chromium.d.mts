import type { BrowserContext, Page } from 'playwright-core';
export declare const CHROMIUM: string;
export declare function chromiumArgs(micFile?: string, o?: { noMic?: boolean }): string[];
export declare function launchChromium(o?: { micFile?: string; noMic?: boolean; viewport?: { width: number; height: number }; deviceScaleFactor?: number; dir?: string }): Promise<BrowserContext>;
// biome-ignore lint/suspicious/noExplicitAny: the page's test hook hands back whatever state the page keeps
export declare function hookedPage(context: BrowserContext): Promise<{ page: Page; state: () => Promise<any>; until: (pred: (s: any) => boolean, what: string, ms?: number) => Promise<any> }>;
