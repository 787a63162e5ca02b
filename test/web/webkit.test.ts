/**
 * The web client in WebKitGTK (the engine of Safari), through WebKitWebDriver and MiniBrowser on an
 * Xvfb display (drivers.ts); the scenarios are in scenarios.ts.
 *
 * Not here: "no sound output". WebKit runs Web Audio with no output device at all (GStreamer's
 * fallback sink), as headless Chromium does, so there is no such state to reach.
 */
import t from 'tap';
import { launchWebKit } from './drivers.js';
import { noMicrophone, talkAndReceive } from './scenarios.js';

t.test('join from a link, talk, receive, join an encrypted invite', (t) => talkAndReceive(t, launchWebKit));
t.test('no microphone: pressing says so and sends nothing', (t) => noMicrophone(t, launchWebKit));
