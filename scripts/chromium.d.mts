import type { BrowserContext } from 'playwright-core';
export declare const CHROMIUM: string;
export declare function chromiumArgs(micFile?: string): string[];
export declare function launchChromium(o?: { micFile?: string; viewport?: { width: number; height: number }; deviceScaleFactor?: number; dir?: string }): Promise<BrowserContext>;
