#!/usr/bin/env node
// The image's single entry point: `controller` or `helper`.
import { UsageError } from './cli/flags.js';
import { CONTROLLER_HELP, runController } from './controller/main.js';
import { HELPER_HELP, runHelper } from './helper/main.js';

const USAGE = `Usage: pull-state-operator <controller|helper> [flags]

  controller   watches PullStatePolicies and protected Pods, checkpoints and restores their state
  helper       stores state copies on its node (one per node, DaemonSet)

Run \`pull-state-operator <command> --help\` for a command's flags.
`;

const commands: Record<string, { help: string; run: (args: string[]) => Promise<void> }> = {
  controller: { help: CONTROLLER_HELP, run: runController },
  helper: { help: HELPER_HELP, run: runHelper },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(
      `unknown command "${name}"; allowed: ${Object.keys(commands).join(', ')}\n\n${USAGE}`,
    );
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(command.help);
    return 0;
  }
  await command.run(args);
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\nRun with --help for the flags.\n`);
      process.exit(2);
    }
    process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
