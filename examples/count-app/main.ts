#!/usr/bin/env node
// The counter of the original demo: +1 every 100 ms, state over HTTP. Follows the app contract for lossless
// planned moves: on SIGTERM it stops counting but keeps serving GET /state for a few seconds.
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../../src/cli/flags.js';

const FLAGS = {
  port: { kind: 'int', min: 1, max: 65535, default: 8080, env: 'PORT', help: 'HTTP port' },
  'tick-ms': {
    kind: 'int',
    min: 1,
    max: 60_000,
    default: 100,
    env: 'TICK_MS',
    help: 'milliseconds between increments',
  },
  'padding-bytes': {
    kind: 'int',
    min: 0,
    max: 1024 ** 3,
    default: 0,
    env: 'STATE_PADDING_BYTES',
    help: 'extra bytes in the state, to test large states',
  },
  'instance-header': {
    kind: 'bool',
    default: true,
    env: 'INSTANCE_HEADER',
    help: 'send Pull-State-Instance (an id new with every process start) so a restart is seen at the first pull',
  },
  'drain-seconds': {
    kind: 'int',
    min: 0,
    max: 300,
    default: 5,
    env: 'DRAIN_SECONDS',
    help: 'seconds GET /state is still served after SIGTERM',
  },
} satisfies FlagSpecs;

const HELP = helpText(
  'count-app [flags]',
  'A counter whose state can be read (GET /state) and restored (POST /state).',
  FLAGS,
);

interface State {
  count: number;
  padding?: string;
}

function isState(body: unknown): body is State {
  const b = body as State;
  return (
    typeof b === 'object' &&
    b !== null &&
    Number.isSafeInteger(b.count) &&
    b.count >= 0 &&
    (b.padding === undefined || typeof b.padding === 'string')
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write(HELP);
    return;
  }
  const flags = parseFlags(args, FLAGS, process.env);
  const padding = 'x'.repeat(flags['padding-bytes']);
  let count = 0;
  let restores = 0;
  let restoredCount: number | null = null;
  let counting = true;
  const app = Fastify({ logger: false, bodyLimit: flags['padding-bytes'] + 1024 * 1024 });
  // Changes with every process start: the operator then never stores the empty state of a restarted process.
  const instance = randomUUID();
  if (flags['instance-header'])
    app.addHook('onSend', async (_req, reply) => {
      reply.header('pull-state-instance', instance);
    });
  const timer = setInterval(() => {
    if (counting) count++;
  }, flags['tick-ms']);

  // The padding never changes: its JSON is encoded once, and a GET sends bytes. Node writes a 1 MiB string
  // to a socket several times slower than a Buffer, which made large states look slow to checkpoint.
  const tail = Buffer.from(padding ? `,"padding":${JSON.stringify(padding)}}` : '}');
  app.get('/state', async (_req, reply) =>
    reply
      .type('application/json; charset=utf-8')
      .send(Buffer.concat([Buffer.from(`{"count":${count}`), tail])),
  );
  app.post('/state', async (req, reply) => {
    if (!isState(req.body)) {
      return reply
        .code(400)
        .send({ error: 'body must be JSON {"count": <whole number >= 0>} (optionally "padding": string)' });
    }
    count = req.body.count;
    restoredCount = count;
    restores++;
    console.log(JSON.stringify({ msg: 'state restored', count, restores }));
    return { count };
  });
  app.get('/healthz', async () => 'ok');
  app.get('/readyz', async (_req, reply) => (counting ? 'ok' : reply.code(503).send('stopping')));
  app.get('/stats', async () => ({ count, restores, restoredCount, counting }));

  await app.listen({ host: '0.0.0.0', port: flags.port });
  console.log(
    JSON.stringify({ msg: 'count-app listening', port: flags.port, paddingBytes: flags['padding-bytes'] }),
  );

  process.once('SIGTERM', () => {
    counting = false;
    clearInterval(timer);
    console.log(
      JSON.stringify({
        msg: 'SIGTERM: counting stopped, still serving',
        count,
        drainSeconds: flags['drain-seconds'],
      }),
    );
    setTimeout(
      () =>
        void app.close().then(
          () => process.exit(0),
          (err: unknown) => {
            process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
            process.exit(1);
          },
        ),
      flags['drain-seconds'] * 1000,
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${err instanceof UsageError ? 'error: ' : 'fatal: '}${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(err instanceof UsageError ? 2 : 1);
});
