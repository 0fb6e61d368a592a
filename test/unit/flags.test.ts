import { helpText, parseFlags, UsageError, type FlagSpecs } from '../../src/cli/flags.js';
import { HELPER_FLAGS, runHelper } from '../../src/helper/main.js';
import { CONTROLLER_FLAGS, runController } from '../../src/controller/main.js';

const specs = {
  port: { kind: 'int', min: 1, max: 65535, default: 9500, env: 'PORT', help: 'port' },
  name: {
    kind: 'string',
    env: 'NAME',
    help: 'name',
    pattern: { test: /^[a-z]+$/, allowed: 'lower-case letters' },
  },
  verbose: { kind: 'bool', default: false, help: 'more output' },
} satisfies FlagSpecs;

describe('parseFlags', () => {
  it('reads flags in both forms, then the environment, then defaults', () => {
    expect(parseFlags(['--port', '80', '--name=abc', '--verbose'], specs)).toEqual({
      port: 80,
      name: 'abc',
      verbose: true,
    });
    expect(parseFlags([], specs, { PORT: '81', NAME: 'env' })).toEqual({
      port: 81,
      name: 'env',
      verbose: false,
    });
  });
  it.each([
    [
      ['--port', 'http', '--name', 'a'],
      '--port "http" is not valid; allowed: a whole number from 1 to 65535',
    ],
    [['--port', '0', '--name', 'a'], 'allowed: a whole number from 1 to 65535'],
    [['--name', 'A1'], '--name "A1" is not valid; allowed: lower-case letters'],
    [['--nope', '1'], 'unknown flag --nope; allowed: --port, --name, --verbose'],
    [['stray'], 'unexpected argument "stray"'],
    [['--name'], 'flag --name needs a value'],
    [[], 'flag --name is required (or set NAME)'],
  ])('rejects %j with a message naming what is allowed', (args, message) => {
    expect(() => parseFlags(args, specs)).toThrow(UsageError);
    expect(() => parseFlags(args, specs)).toThrow(message);
  });
  it('names a bad environment variable', () => {
    expect(() => parseFlags(['--name', 'a'], specs, { PORT: 'x' })).toThrow(
      'environment variable PORT "x" is not valid',
    );
  });
  it('lists every flag with its default and variable in --help', () => {
    const help = helpText('x [flags]', 'does x', specs);
    expect(help).toMatch(/--port <n>\s+port \(default 9500; env PORT\)/);
    expect(help).toMatch(/--name <value>\s+name \(required; env NAME\)/);
  });
});

describe("the helper's tenant limits", () => {
  const required = { POD_IP: '10.0.0.1', NODE_IP: '10.0.0.2', NODE_NAME: 'n1' };
  it('refuse values out of range, naming the flag (or variable) and the allowed range', () => {
    for (const [args, env, message] of [
      [['--max-uploads', '0'], {}, /--max-uploads "0" is not valid; allowed: a whole number from 1 to 4096/],
      [['--max-uploads-per-namespace', 'many'], {}, /--max-uploads-per-namespace/],
      [['--namespace-quota-bytes', '-1'], {}, /--namespace-quota-bytes/],
      [[], { HELPER_MAX_UPLOADS: '5000' }, /HELPER_MAX_UPLOADS/],
    ] as const) {
      const run = () => parseFlags([...args], HELPER_FLAGS, { ...required, ...env });
      expect(run).toThrow(UsageError);
      expect(run).toThrow(message);
    }
    const ok = parseFlags(['--max-uploads', '64', '--namespace-quota-bytes', '0'], HELPER_FLAGS, required);
    expect(ok).toMatchObject({
      'max-uploads': 64,
      'max-uploads-per-namespace': 8,
      'namespace-quota-bytes': 0,
    });
  });
});

describe('the credentials flags', () => {
  const required = { POD_IP: '10.0.0.1', NODE_IP: '10.0.0.2', NODE_NAME: 'n1' };
  it("take the Pod's UID from POD_UID, refusing anything else, and are optional outside a Pod", () => {
    const uid = '0f4c2a1e-1111-2222-3333-444455556666';
    expect(parseFlags([], HELPER_FLAGS, { ...required, POD_NAME: 'h-1', POD_UID: uid })).toMatchObject({
      'pod-name': 'h-1',
      'pod-uid': uid,
      'token-audience': 'pullstate.hitachienergy.com/helper',
    });
    expect(parseFlags([], HELPER_FLAGS, required)).toMatchObject({ 'pod-name': '', 'pod-uid': '' });
    expect(() => parseFlags([], HELPER_FLAGS, { ...required, POD_UID: '../x' })).toThrow(
      'environment variable POD_UID "../x" is not valid; allowed: a Pod UID',
    );
    expect(() => parseFlags(['--pod-uid', 'x'], CONTROLLER_FLAGS, {})).toThrow('--pod-uid "x" is not valid');
    expect(() => parseFlags(['--helper-token-audience', 'a b'], CONTROLLER_FLAGS, {})).toThrow(
      /--helper-token-audience "a b" is not valid; allowed: an audience without spaces/,
    );
    expect(parseFlags([], CONTROLLER_FLAGS, { SERVICE_ACCOUNT_NAME: 'ctl' })).toMatchObject({
      'service-account': 'ctl',
      'helper-token-audience': 'pullstate.hitachienergy.com/helper',
    });
  });
});

describe('starting without a Pod identity', () => {
  it('is refused while an audience is set: never the API server token to a helper', async () => {
    await expect(runController([])).rejects.toThrow(
      "--pod-uid (POD_UID) is needed: helper tokens are bound to this Pod; outside a Pod, set --helper-token-audience ''",
    );
    await expect(
      runHelper(['--pod-ip', '10.0.0.1', '--node-ip', '10.0.0.2', '--node-name', 'n1', '--pod-name', 'h']),
    ).rejects.toThrow('--pod-name and --pod-uid (POD_NAME, POD_UID) are needed');
  });
});
