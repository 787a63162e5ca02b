/**
 * The web client in Debian's Firefox ESR, through puppeteer-core over WebDriver BiDi with a
 * PulseAudio null sink as its sound output (drivers.ts); the scenarios are in scenarios.ts.
 *
 * Not here: "no microphone". Firefox takes the PulseAudio null sink's monitor source for a
 * microphone, so with a sound output there is always one (docs/web-client.md, "Browsers").
 */
import t from 'tap';
import { launchFirefox } from './drivers.js';
import { noSoundOutput, talkAndReceive } from './scenarios.js';

// Room for the tries a hung driver costs (scenarios.ts, `attempt`): up to three launches a scenario.
t.setTimeout(300_000);

t.test('join from a link, talk, receive, join an encrypted invite', (t) => talkAndReceive(t, launchFirefox));
t.test('no sound output: pressing says so and sends nothing', (t) => noSoundOutput(t, launchFirefox));
