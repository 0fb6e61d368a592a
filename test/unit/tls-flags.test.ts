import { parseFlags, UsageError } from '../../src/cli/flags.js';
import { CONTROLLER_FLAGS } from '../../src/controller/main.js';
import { HELPER_FLAGS } from '../../src/helper/main.js';

const node = ['--node-name', 'n1', '--node-ip', '10.0.0.254'];

describe('flags of the helper TLS', () => {
  it('the helper takes its Pod IP and health port, and names what is allowed when they are wrong', () => {
    expect(parseFlags([...node, '--pod-ip', '10.244.1.5'], HELPER_FLAGS, {})['pod-ip']).toBe('10.244.1.5');
    expect(parseFlags(node, HELPER_FLAGS, { POD_IP: '10.244.1.6' })['pod-ip']).toBe('10.244.1.6');
    expect(() => parseFlags([...node, '--pod-ip', 'helper-1'], HELPER_FLAGS, {})).toThrow(UsageError);
    expect(() => parseFlags(node, HELPER_FLAGS, {})).toThrow(/--pod-ip is required \(or set POD_IP\)/);
    expect(() => parseFlags([...node, '--pod-ip', 'helper-1'], HELPER_FLAGS, {})).toThrow(
      /an IPv4 or IPv6 address/,
    );
    // IPv6 and dual-stack clusters: the primary address of either family; a zone is no Pod address.
    expect(parseFlags([...node, '--pod-ip', 'fd00:10:244:1::5'], HELPER_FLAGS, {})['pod-ip']).toBe(
      'fd00:10:244:1::5',
    );
    expect(() => parseFlags([...node, '--pod-ip', 'fe80::5%eth0'], HELPER_FLAGS, {})).toThrow(UsageError);
    expect(
      parseFlags(['--node-name', 'n1', '--node-ip', 'fd00::fe', '--pod-ip', '10.0.0.1'], HELPER_FLAGS, {})[
        'node-ip'
      ],
    ).toBe('fd00::fe');
    expect(parseFlags([], CONTROLLER_FLAGS, { POD_IP: 'fd00::7' })['pod-ip']).toBe('fd00::7');
    expect(parseFlags([], CONTROLLER_FLAGS, {})['pod-ip']).toBe('');
    expect(() => parseFlags(['--pod-ip', '10.0.0'], CONTROLLER_FLAGS, {})).toThrow(
      /--pod-ip "10.0.0" is not valid; allowed: an IPv4 or IPv6 address/,
    );
    expect(() =>
      parseFlags([...node, '--pod-ip', '10.0.0.1', '--health-port', '0'], HELPER_FLAGS, {}),
    ).toThrow(/1 to 65535/);
    // The node's address is required too: pulls and restores there are refused unless hostNetwork is allowed.
    expect(() => parseFlags(['--node-name', 'n1', '--pod-ip', '10.0.0.1'], HELPER_FLAGS, {})).toThrow(
      /--node-ip is required \(or set NODE_IP\)/,
    );
    expect(
      parseFlags(['--node-name', 'n1', '--pod-ip', '10.0.0.1'], HELPER_FLAGS, { NODE_IP: '10.0.0.9' })[
        'node-ip'
      ],
    ).toBe('10.0.0.9');
  });

  it('the controller refuses a certificate validity below 30 s or a bad helper ServiceAccount name', () => {
    expect(parseFlags([], CONTROLLER_FLAGS, {})['helper-cert-seconds']).toBe(86_400);
    expect(() => parseFlags(['--helper-cert-seconds', '5'], CONTROLLER_FLAGS, {})).toThrow(/30/);
    expect(() => parseFlags(['--helper-service-account', 'Bad_Name'], CONTROLLER_FLAGS, {})).toThrow(
      /a ServiceAccount name/,
    );
  });
});
