// npm run check-app -- http://<host>:<port>/state: checks an app against the app contract (docs/app-contract.md)
// the way the helper will call it. Read-only unless --write is given (a POST of the state just read).
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../../src/cli/flags.js';
import { INSTANCE_HEADER } from '../../src/api/constants.js';
import { judgeGets, judgeRestore, summary, type Answer, type Finding } from './checks.js';

const FLAGS = {
  gets: { kind: 'int', min: 1, max: 100, default: 5, help: 'GETs to time and compare' },
  'timeout-ms': {
    kind: 'int',
    min: 100,
    max: 3_600_000,
    default: 5000,
    help: "longest wait for one answer (the policy's timeoutSeconds)",
  },
  'max-bytes': {
    kind: 'int',
    min: 1,
    max: 1024 ** 3,
    default: 16 * 1024 ** 2,
    help: "largest state allowed (the policy's maxStateBytes)",
  },
  'interval-seconds': { kind: 'int', min: 1, max: 3600, default: 1, help: "the policy's intervalSeconds" },
  write: {
    kind: 'bool',
    default: false,
    help: 'also POST the state just read back to the app and read it again (changes the app: updates between the GET and the POST are lost)',
  },
} satisfies FlagSpecs;

const HELP = helpText(
  'npm run check-app -- <http://host:port/path> [flags]',
  'Checks an app against the pull-state app contract: GET answers 200 with the state, within the size limit and fast enough for the interval, with a valid and stable Pull-State-Instance header; with --write, POST replaces the state. Exit code 0: no FAIL; 1: some check failed; 2: wrong command line.',
  FLAGS,
);

async function get(url: string, timeoutMs: number): Promise<Answer> {
  const started = performance.now();
  // As the helper calls: no redirects followed, no compression asked for.
  const res = await fetch(url, {
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'manual',
    headers: { 'accept-encoding': 'identity' },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const instance = res.headers.get(INSTANCE_HEADER) ?? undefined;
  return {
    status: res.status,
    bytes,
    ms: performance.now() - started,
    ...(res.headers.get('content-type') ? { contentType: res.headers.get('content-type')! } : {}),
    ...(instance !== undefined ? { instance } : {}),
  };
}

/** Why a call got no answer: the timeout, or the socket's own error (fetch's message alone says "fetch failed"). */
function failure(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return e.cause ? `${e.message}: ${e.cause.code ?? e.cause.message}` : e.message;
}

async function check(url: string, flags: ReturnType<typeof parseFlags<typeof FLAGS>>): Promise<Finding[]> {
  const answers: Answer[] = [];
  for (let i = 0; i < flags.gets; i++) {
    try {
      answers.push(await get(url, flags['timeout-ms']));
    } catch (err) {
      return [
        {
          verdict: 'fail',
          check: 'GET answers',
          detail: `${url}: ${failure(err, flags['timeout-ms'])}`,
        },
      ];
    }
  }
  const findings = judgeGets(answers, {
    maxBytes: flags['max-bytes'],
    intervalMs: flags['interval-seconds'] * 1000,
  });
  if (!flags.write || answers[0]!.status !== 200) return findings;
  const posted = answers.at(-1)!.bytes;
  try {
    const res = await fetch(url, {
      method: 'POST',
      body: posted,
      headers: { 'content-type': answers.at(-1)!.contentType ?? 'application/octet-stream' },
      signal: AbortSignal.timeout(flags['timeout-ms']),
    });
    const body = await res.text();
    findings.push(...judgeRestore(posted, { status: res.status, body }, await get(url, flags['timeout-ms'])));
  } catch (err) {
    findings.push({
      verdict: 'fail',
      check: 'POST replaces the state',
      detail: failure(err, flags['timeout-ms']),
    });
  }
  return findings;
}

async function main(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  // The one argument that is neither a flag nor a flag's value.
  const positional: number[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(=.*)?$/.exec(args[i]!);
    if (!m) positional.push(i);
    else if (!m[2] && FLAGS[m[1] as keyof typeof FLAGS]?.kind !== 'bool') i++;
  }
  if (positional.length > 1)
    throw new UsageError(
      `one URL is needed, got ${positional.map((i) => JSON.stringify(args[i])).join(', ')}`,
    );
  const url = positional.length === 1 ? args[positional[0]!]! : undefined;
  if (url === undefined)
    throw new UsageError("the app's state URL is needed, e.g. http://10.0.0.5:8080/state");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${JSON.stringify(url)} is not a URL; allowed: http://<host>:<port>/<path>`);
  }
  if (parsed.protocol !== 'http:')
    throw new UsageError(
      `${url}: the helper pulls over plain HTTP (the Pod network); allowed: http://<host>:<port>/<path>`,
    );
  const rest = args.filter((_, i) => i !== positional[0]);
  const flags = parseFlags(rest, FLAGS);
  const { fails, warns, text } = summary(await check(url, flags));
  process.stdout.write(
    `${text}\n\n${fails} failed, ${warns} warnings: ${fails ? 'the app does not follow the contract' : 'the app follows the contract'}\n`,
  );
  return fails > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`check-app: ${(err as Error).message}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
