// The helper's and the controller's last line of defence, on a stand-in process and a real winston logger.
import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import winston from 'winston';
import { handleProcessErrors } from '../../../src/runtime/process-errors.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new PassThrough();
  stream.on('data', (b: Buffer) => {
    for (const l of b.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  const log = winston.createLogger({
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { log, lines };
}

describe('handleProcessErrors', () => {
  it('logs an unhandled rejection with its message and stack, and keeps the process running', async () => {
    const proc = new EventEmitter();
    const { log, lines } = capture();
    const exit = jest.fn();
    handleProcessErrors(log, { process: proc, exit });
    proc.emit('unhandledRejection', new TypeError('Request path contains unescaped characters'));
    proc.emit('unhandledRejection', 'a plain string');
    await new Promise((r) => setTimeout(r, 20));
    expect(exit).not.toHaveBeenCalled();
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        error: 'Request path contains unescaped characters',
        stack: expect.stringContaining('TypeError: Request path contains unescaped characters'),
      }),
      expect.objectContaining({ level: 'error', error: 'a plain string' }),
    ]);
    // Still logging: the logger was not ended.
    log.info('still here');
    await new Promise((r) => setTimeout(r, 20));
    expect(lines.at(-1)).toMatchObject({ message: 'still here' });
  });

  it('logs an uncaught exception, flushes the logs, then exits non-zero once', async () => {
    const proc = new EventEmitter();
    const { log, lines } = capture();
    let exited: number | undefined;
    const exitedAfter: number[] = [];
    handleProcessErrors(log, {
      process: proc,
      exit: (code) => {
        exited = code;
        exitedAfter.push(lines.length);
      },
    });
    proc.emit('uncaughtException', new Error('boom'), 'uncaughtException');
    proc.emit('uncaughtException', new Error('again'), 'uncaughtException');
    await new Promise((r) => setTimeout(r, 50));
    expect(exited).toBe(1);
    expect(exitedAfter).toEqual([1]);
    expect(lines[0]).toMatchObject({ level: 'error', error: 'boom', origin: 'uncaughtException' });
    expect(lines[0]!.stack).toContain('Error: boom');
  });

  it('exits even if the logs cannot be flushed in time', async () => {
    const proc = new EventEmitter();
    const stuck = winston.createLogger({
      transports: [new winston.transports.Stream({ stream: new PassThrough({ highWaterMark: 1 }) })],
    });
    // A stream nobody reads: 'finish' never comes.
    for (let i = 0; i < 100; i++) stuck.info('x'.repeat(100));
    const exit = jest.fn();
    handleProcessErrors(stuck, { process: proc, exit, flushMs: 30 });
    proc.emit('uncaughtException', new Error('boom'));
    await new Promise((r) => setTimeout(r, 80));
    expect(exit).toHaveBeenCalledWith(1);
  });

  it('removes its handlers when asked', () => {
    const proc = new EventEmitter();
    const off = handleProcessErrors(capture().log, { process: proc, exit: jest.fn() });
    expect(proc.listenerCount('unhandledRejection')).toBe(1);
    off();
    expect(proc.listenerCount('unhandledRejection') + proc.listenerCount('uncaughtException')).toBe(0);
  });
});
