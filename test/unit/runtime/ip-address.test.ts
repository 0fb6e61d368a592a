import {
  IP_ADDRESS,
  canonicalIP,
  hostPort,
  httpURL,
  isLoopback,
  notAPodIP,
  sameIP,
  wildcardAddress,
} from '../../../src/runtime/ip-address.js';

describe('IP addresses of IPv4, IPv6 and dual-stack clusters', () => {
  it('spells each address one way, and knows a non-address or a zone is none', () => {
    expect(canonicalIP('10.244.1.7')).toBe('10.244.1.7');
    expect(canonicalIP('FD00:10:244:0:0:0:0:5')).toBe('fd00:10:244::5');
    expect(canonicalIP('2001:db8::1')).toBe('2001:db8::1');
    for (const bad of [
      '',
      'pod.local',
      '10.244.1',
      '010.1.1.1',
      '10.244.1.7:80',
      '[fd00::5]',
      'fe80::1%eth0',
      ':::',
    ])
      expect({ bad, ip: canonicalIP(bad) }).toEqual({ bad, ip: undefined });
    expect(sameIP('fd00:10:244::5', 'FD00:10:244:0::5')).toBe(true);
    expect(sameIP('fd00:10:244::5', 'fd00:10:244::6')).toBe(false);
    expect(sameIP('10.0.0.1', undefined)).toBe(false);
    expect(sameIP('nonsense', 'nonsense')).toBe(false);
  });

  it('brackets an IPv6 address wherever a port follows it', () => {
    expect(hostPort('10.244.1.7', 8080)).toBe('10.244.1.7:8080');
    expect(hostPort('fd00::5', 8080)).toBe('[fd00::5]:8080');
    expect(httpURL('https', 'fd00::5', 9443)).toBe('https://[fd00::5]:9443');
    expect(httpURL('http', '10.0.0.1', 80, '/state')).toBe('http://10.0.0.1:80/state');
    // What the URL parser makes of it is the same host and port.
    const u = new URL(httpURL('http', 'fd00:10:244::5', 8080, '/state'));
    expect([u.hostname, u.port, u.pathname]).toEqual(['[fd00:10:244::5]', '8080', '/state']);
  });

  it('refuses every address no Pod has, in both families', () => {
    const notPods = [
      '0.0.0.0',
      '127.0.0.1',
      '169.254.169.254',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      '0:0:0:0:0:0:0:1',
      '::ffff:a9fe:a9fe', // IPv4-mapped 169.254.169.254
      '::a9fe:a9fe', // IPv4-compatible
      'fe80::1',
      'febf::1',
      'fec0::1',
      'ff02::1',
      '64:ff9b::a9fe:a9fe', // NAT64 of 169.254.169.254
      '64:ff9b:1::1',
      '2002:a9fe:a9fe::1', // 6to4
      'fd00:ec2::254', // AWS metadata
      'FD00:EC2:0::254',
      'fd20:ce::254', // GCP metadata
      'fd00:c1::a9fe:a9fe', // Oracle metadata
      '100.100.100.200', // Alibaba metadata
      '168.63.129.16', // Azure host services
      'not-an-ip',
      'fe80::1%eth0',
    ];
    for (const ip of notPods) expect({ ip, refused: notAPodIP(ip) }).toEqual({ ip, refused: true });
    const pods = [
      '10.244.1.7',
      '192.168.0.5',
      'fd00:10:244::5',
      '2600:1f18::7',
      'fd00:ec2::253',
      'fc00::1',
      '::2:0:0:1',
    ];
    for (const ip of pods) expect({ ip, refused: notAPodIP(ip) }).toEqual({ ip, refused: false });
  });

  it('tells loopback, flags and the listening address by family', () => {
    expect(['127.0.0.1', '127.9.9.9', '::1', '0::1'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['10.0.0.1', '::2', 'fe80::1', 'x'].map(isLoopback)).toEqual([false, false, false, false]);
    expect(['10.0.0.1', 'fd00::5', '10.0.0', 'fd00::5%1'].map(IP_ADDRESS.test)).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect(wildcardAddress('fd00::5')).toBe('::');
    expect(wildcardAddress('10.244.0.5')).toBe('0.0.0.0');
    expect(wildcardAddress(undefined)).toBe('0.0.0.0');
  });
});
