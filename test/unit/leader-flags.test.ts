// The controller's Lease timings as a user passes them: the defaults are safe, and a combination where a
// leader could act while a standby takes over is refused before anything starts, naming the rule.
import { parseFlags, UsageError } from '../../src/cli/flags.js';
import { CONTROLLER_FLAGS, CONTROLLER_HELP, runController } from '../../src/controller/main.js';

describe('leader election flags', () => {
  it('default to a 5 s Lease, a 4 s renew deadline and a 0.5 s retry period, and say so in --help', () => {
    const f = parseFlags([], CONTROLLER_FLAGS, {});
    expect([f['lease-duration-seconds'], f['renew-deadline-ms'], f['retry-period-ms']]).toEqual([
      5, 4000, 500,
    ]);
    expect(CONTROLLER_HELP).toMatch(/--lease-duration-seconds/);
    expect(CONTROLLER_HELP).toMatch(
      /retry period < renew deadline <= lease duration - max\(1 s, 20 % of it\)/,
    );
  });

  it.each([
    [['--renew-deadline-ms', '5000'], /renew deadline 5000 ms, lease duration 5000 ms/],
    [['--lease-duration-seconds', '3'], /renew deadline 4000 ms, lease duration 3000 ms/],
    [['--retry-period-ms', '4000'], /retry period 4000 ms, renew deadline 4000 ms/],
  ])('refuses %j before anything starts', async (args, message) => {
    const run = runController(args);
    await expect(run).rejects.toThrow(UsageError);
    await expect(runController(args)).rejects.toThrow(message);
    await expect(runController(args)).rejects.toThrow(
      /allowed: retry period < renew deadline <= lease duration - max\(1 s, 20 % of it\)/,
    );
  });

  it('refuses a Lease shorter than 2 s with the allowed range', () => {
    expect(() => parseFlags(['--lease-duration-seconds', '1'], CONTROLLER_FLAGS, {})).toThrow(/2 to 600/);
  });
});
