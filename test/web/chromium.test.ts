/**
 * What every browser runs (scenarios.ts) that Chromium's own tests do not already cover: with no
 * capture device, pressing says "No microphone found" and sends nothing. Joining from a link,
 * talking, receiving and encrypted invites are in e2e.test.ts and encrypted.test.ts, with more
 * checks than the scenarios make; "no sound output" is in e2e.test.ts, faked, as headless
 * Chromium always runs audio.
 */
import t from 'tap';
import { launchChromiumDriven } from './drivers.js';
import { noMicrophone } from './scenarios.js';

t.test('no microphone: pressing says so and sends nothing', (t) => noMicrophone(t, launchChromiumDriven));
