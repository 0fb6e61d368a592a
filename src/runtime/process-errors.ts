import type { Logger } from './logger.js';
import { errorMessage } from './logger.js';

type ErrorEvent = 'unhandledRejection' | 'uncaughtException';
type ErrorListener = (err: unknown, origin?: string) => void;

/**
 * The two events this module handles, and nothing else of `process`: `Pick<NodeJS.Process, 'on'>` would
 * demand that `on` return a whole Process, which a stand-in EventEmitter does not.
 */
export interface ProcessEvents {
  on(event: ErrorEvent, listener: ErrorListener): unknown;
  off(event: ErrorEvent, listener: ErrorListener): unknown;
}

export interface ProcessErrorOptions {
  /** The process whose events are handled; tests pass an EventEmitter. */
  process?: ProcessEvents;
  exit?: (code: number) => void;
  /** How long the logs may take to reach stdout before the process exits anyway. */
  flushMs?: number;
}

const details = (err: unknown) => ({
  error: errorMessage(err),
  ...(err instanceof Error && err.stack ? { stack: err.stack } : {}),
});

/** Resolves once the logger has written everything it holds (it takes no more lines after this), or after `ms`. */
function flushed(log: Logger, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    log.once('finish', () => {
      clearTimeout(timer);
      resolve();
    });
    log.end();
  });
}

/**
 * The last line of defence of a long-running process (the helper, the controller) against a bug that lets
 * an error escape. Returns a function that removes the handlers.
 *
 * A rejected promise nobody awaits is logged, with its stack so the missing handler can be found, and the
 * process keeps serving. Node's default since v15 is to exit, and the input that caused it is usually still
 * there after the restart: one tenant's odd liveness path took a node's helper down in a restart loop, and
 * every other Pod of the node with it. The code that rejected has run to its end (its `finally` blocks too);
 * what is lost is the result of that one operation, which the caller never looked at anyway.
 *
 * An exception thrown out of a callback (a timer, an event) is another matter: it left its work half-done
 * somewhere, and Node's documentation is clear that resuming after it is unsafe. It is logged, the logs are
 * flushed, and the process exits non-zero; the kubelet restarts it. Nothing is lost that a restart does not
 * already rebuild: the helper's copies are on disk, the controller reads everything from the API.
 */
export function handleProcessErrors(log: Logger, o: ProcessErrorOptions = {}): () => void {
  const proc = o.process ?? process;
  const exit = o.exit ?? ((code: number) => process.exit(code));
  let exiting = false;
  const onRejection = (reason: unknown) =>
    log.error('unhandled promise rejection; the process keeps serving', details(reason));
  const onException = (err: unknown, origin?: string) => {
    if (exiting) return;
    exiting = true;
    log.error('uncaught exception; exiting so the process restarts clean', { ...details(err), origin });
    // Exits whether or not the logs could be flushed.
    void flushed(log, o.flushMs ?? 2000).then(
      () => exit(1),
      () => exit(1),
    );
  };
  proc.on('unhandledRejection', onRejection);
  proc.on('uncaughtException', onException);
  return () => {
    proc.off('unhandledRejection', onRejection);
    proc.off('uncaughtException', onException);
  };
}
