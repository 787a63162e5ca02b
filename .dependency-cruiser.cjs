/**
 * The house rules for imports, checked by `npm run deps` (and so by `npm test`). README, "Where
 * things are", says what each folder is for; these keep lower layers from reaching up.
 */

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle makes load order matter and the layers meaningless.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shared-code-is-not-node-only',
      severity: 'error',
      comment: 'What the browser runs too must not need Node (gateway/shared/tsconfig.json also refuses Node types).',
      from: { path: ['^gateway/shared/', '^gateway/web/src'] },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'shared-code-stays-below-the-gateway',
      severity: 'error',
      comment: 'Protocol, crypto, codec and DSP know nothing of the daemon, its radios, its network layer or the page.',
      from: { path: '^gateway/shared/' },
      to: { path: '^gateway/(src|web)/' },
    },
    {
      name: 'the-web-client-uses-shared-code-not-the-daemon',
      severity: 'error',
      comment: 'What ships to phones is gateway/web and gateway/shared; nothing from the Node daemon.',
      from: { path: '^gateway/web/' },
      to: { path: '^gateway/src/' },
    },
    {
      name: 'channel-does-not-import-crypto',
      severity: 'error',
      comment: 'The session takes a Sealer (channel/sealer.ts); crypto/ builds on the wire format, not the other way round.',
      from: { path: '^gateway/shared/channel/' },
      to: { path: '^gateway/shared/crypto/' },
    },
    {
      name: 'radio-does-not-import-bridge',
      severity: 'error',
      comment: 'Radio drivers are small contracts; the bridge uses them, never the reverse.',
      from: { path: '^gateway/src/radio/' },
      to: { path: '^gateway/src/bridge/' },
    },
    {
      name: 'net-does-not-import-app',
      severity: 'error',
      comment: 'Connections and the uplink are used by the composition root (app/), not the reverse.',
      from: { path: '^gateway/src/net/' },
      to: { path: '^gateway/src/app/' },
    },
    {
      name: 'only-the-web-client-imports-the-web-client',
      severity: 'error',
      from: { pathNot: '^gateway/web/' },
      to: { path: '^gateway/web/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a circle of types is still a circle in the design.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
