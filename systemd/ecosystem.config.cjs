// pm2 process file: the alternative to systemd/talkbridge.service where systemd is not the
// supervisor (containers, other distributions).
//
//   npm install -g pm2          # yourself: pm2 is AGPL-3.0 and about 60 MB installed, so it is
//                               # deliberately NOT a talkbridge dependency
//   pm2 start systemd/ecosystem.config.cjs && pm2 save && pm2 startup
//
// What pm2 cannot do that the systemd unit does (docs/operations.md, "pm2 alternative"):
//   - no ExecStopPost: after a SIGKILL nothing runs `talkbridge reset`. The PTT guard process
//     still unkeys when the daemon dies, but a CM108 or sysfs GPIO line is only re-driven idle by
//     the next start (every PTT driver opens idle). Run `talkbridge reset --config FILE` yourself
//     after `pm2 kill`.
//   - no watchdog gated on pipeline health, no device sandboxing.
// .cjs because the package is an ES module and pm2 loads process files with require().
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const config = process.env.TALKBRIDGE_CONFIG || '/etc/talkbridge/config.yaml';

module.exports = {
  apps: [
    {
      name: 'talkbridge',
      cwd: root,
      script: path.join(root, 'gateway/bin/talkbridge.js'),
      args: ['run', '--config', config],
      interpreter: 'node',
      exec_mode: 'fork',
      instances: 1,
      autorestart: true,
      // pm2's default of 16 quick restarts then giving up would leave a field gateway dead after
      // a long broker outage; back off exponentially (to 15 s) and never stop trying.
      exp_backoff_restart_delay: 500,
      max_restarts: Number.MAX_SAFE_INTEGER,
      min_uptime: '30s',
      // pm2 sends SIGINT, then SIGKILL after kill_timeout (default 1.6 s). The daemon needs up to
      // 5 s to unkey, leave its channels and stop; give it that and a margin.
      kill_timeout: 8000,
      // The daemon logs JSON lines itself; pm2 adds no time stamps of its own.
      time: false,
      merge_logs: true,
      env: { NODE_ENV: 'production' },
    },
  ],
};
