// The app contract as checks a user can run against their own app (`npm run check-app`): each finding says
// what was seen and what the contract wants. Pure judgements of what the HTTP calls returned; main.ts calls.
import { INSTANCE_PATTERN } from '../../src/api/constants.js';

export type Verdict = 'pass' | 'warn' | 'fail';

export interface Finding {
  verdict: Verdict;
  check: string;
  detail: string;
}

/** One GET of the state, as seen by the checker. */
export interface Answer {
  status: number;
  bytes: Buffer;
  contentType?: string;
  instance?: string;
  ms: number;
}

export interface Limits {
  maxBytes: number;
  /** The interval the user intends: a GET slower than this cannot keep up. */
  intervalMs: number;
}

const kib = (n: number) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

/** GET /state: answered 200 with the state, within its size limit, fast enough for the interval. */
export function judgeGets(answers: Answer[], limits: Limits): Finding[] {
  const out: Finding[] = [];
  const first = answers[0]!;
  if (first.status !== 200) {
    out.push({
      verdict: 'fail',
      check: 'GET answers 200',
      detail: `answered ${first.status}; the helper stores only a 200 answer's body`,
    });
    return out;
  }
  out.push({
    verdict: 'pass',
    check: 'GET answers 200',
    detail: `${kib(first.bytes.length)}, ${first.contentType ?? 'no content type'}`,
  });
  const largest = Math.max(...answers.map((a) => a.bytes.length));
  out.push(
    largest > limits.maxBytes
      ? {
          verdict: 'fail',
          check: 'state within maxStateBytes',
          detail: `${largest} bytes; the policy allows ${limits.maxBytes} (raise spec.maxStateBytes)`,
        }
      : {
          verdict: 'pass',
          check: 'state within maxStateBytes',
          detail: `${largest} of ${limits.maxBytes} bytes`,
        },
  );
  const times = answers.map((a) => a.ms).sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  out.push(
    median > limits.intervalMs / 2
      ? {
          verdict: 'warn',
          check: 'GET fast for the interval',
          detail: `median ${median.toFixed(0)} ms of ${answers.length}: more than half the ${limits.intervalMs} ms interval; pulls will lag (a longer interval, or a cheaper snapshot)`,
        }
      : {
          verdict: 'pass',
          check: 'GET fast for the interval',
          detail: `median ${median.toFixed(1)} ms of ${answers.length}`,
        },
  );
  out.push(...judgeInstance(answers));
  return out;
}

/** The process identity header: optional, but when sent, one short printable id that stays the same. */
export function judgeInstance(answers: Answer[]): Finding[] {
  const check = 'Pull-State-Instance header';
  const values = answers.map((a) => a.instance);
  if (values.every((v) => v === undefined))
    return [
      {
        verdict: 'warn',
        check,
        detail:
          'not sent: a restarted app is recognised by its restart count only, up to a second later; send an id new with every process start (e.g. a UUID)',
      },
    ];
  const bad = values.find((v) => typeof v !== 'string' || !INSTANCE_PATTERN.test(v));
  if (bad !== undefined)
    return [
      {
        verdict: 'fail',
        check,
        detail: `${JSON.stringify(bad)} is not valid; allowed: one value of 1 to 128 printable ASCII characters without spaces (the helper refuses the pull otherwise)`,
      },
    ];
  if (new Set(values).size > 1)
    return [
      {
        verdict: 'fail',
        check,
        detail: `changed between GETs of one process (${[...new Set(values)].join(', ')}): every answer would look like a restart, and no copy is stored; take it once at start-up`,
      },
    ];
  return [{ verdict: 'pass', check, detail: `${String(values[0])}, the same in ${values.length} answers` }];
}

/** POST /state with the state just read, then GET: the app took it, and answers with it (or what followed). */
export function judgeRestore(
  posted: Buffer,
  post: { status: number; body: string },
  after: Answer,
): Finding[] {
  const check = 'POST replaces the state';
  if (post.status < 200 || post.status > 299)
    return [
      {
        verdict: 'fail',
        check,
        detail: `POST answered ${post.status} ${post.body.slice(0, 200)}; a restore needs a 2xx`,
      },
    ];
  if (after.status !== 200)
    return [{ verdict: 'fail', check, detail: `GET after the POST answered ${after.status}` }];
  if (after.bytes.equals(posted))
    return [{ verdict: 'pass', check, detail: `GET returns the ${kib(posted.length)} posted` }];
  return [
    {
      verdict: 'warn',
      check,
      detail: `GET after the POST differs from what was posted (${kib(posted.length)} posted, ${kib(after.bytes.length)} read): fine if the app changed its state in between, else the POST did not replace it`,
    },
  ];
}

export function summary(findings: Finding[]): { fails: number; warns: number; text: string } {
  const mark = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' } as const;
  const text = findings.map((f) => `${mark[f.verdict]}  ${f.check}: ${f.detail}`).join('\n');
  return {
    fails: findings.filter((f) => f.verdict === 'fail').length,
    warns: findings.filter((f) => f.verdict === 'warn').length,
    text,
  };
}
