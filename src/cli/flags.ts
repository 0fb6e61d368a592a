// Command-line flags with environment fallbacks: one table per command gives parsing, checking and --help.

export interface FlagSpec {
  kind: 'string' | 'int' | 'bool';
  help: string;
  /** Environment variable read when the flag is not given (Kubernetes manifests set these via env). */
  env?: string;
  default?: string | number | boolean;
  min?: number;
  max?: number;
  /** For strings: a check and the wording of what is allowed. */
  pattern?: { test: { test(value: string): boolean }; allowed: string };
}

export type FlagSpecs = Record<string, FlagSpec>;
export type FlagValues<S extends FlagSpecs> = {
  [K in keyof S]: S[K]['kind'] extends 'int' ? number : S[K]['kind'] extends 'bool' ? boolean : string;
};

/** Wrong command-line input; the message says what was wrong and what is allowed. Exit code 2. */
export class UsageError extends Error {}

function allowedText(spec: FlagSpec): string {
  if (spec.kind === 'int')
    return `a whole number from ${spec.min ?? 0} to ${spec.max ?? Number.MAX_SAFE_INTEGER}`;
  if (spec.kind === 'bool') return 'true or false';
  return spec.pattern?.allowed ?? 'a non-empty string';
}

function convert(name: string, spec: FlagSpec, raw: string, source: string): string | number | boolean {
  const fail = () =>
    new UsageError(`${source} ${JSON.stringify(raw)} is not valid; allowed: ${allowedText(spec)}`);
  if (spec.kind === 'int') {
    if (!/^\d+$/.test(raw)) throw fail();
    const n = Number(raw);
    if (n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) throw fail();
    return n;
  }
  if (spec.kind === 'bool') {
    if (raw === 'true' || raw === '') return true;
    if (raw === 'false') return false;
    throw fail();
  }
  if (raw === '' || (spec.pattern && !spec.pattern.test.test(raw))) throw fail();
  return raw;
}

/**
 * Parses `--name value`, `--name=value` and bare `--flag` for booleans; flags not given come from their
 * environment variable, then their default. Unknown flags, positional arguments and bad values are
 * UsageErrors naming the flag and what it accepts.
 */
export function parseFlags<S extends FlagSpecs>(
  args: readonly string[],
  specs: S,
  env: NodeJS.ProcessEnv = {},
): FlagValues<S> {
  const values: Record<string, string | number | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}; flags look like --name value`);
    const name = m[1]!;
    const spec = specs[name];
    if (!spec) {
      throw new UsageError(
        `unknown flag --${name}; allowed: ${Object.keys(specs)
          .map((k) => `--${k}`)
          .join(', ')}`,
      );
    }
    let raw = m[2];
    if (raw === undefined && spec.kind !== 'bool') {
      raw = args[++i];
      if (raw === undefined) throw new UsageError(`flag --${name} needs a value: ${allowedText(spec)}`);
    }
    values[name] = convert(name, spec, raw ?? '', `--${name}`);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (name in values) continue;
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '')
      values[name] = convert(name, spec, fromEnv, `environment variable ${spec.env}`);
    else if (spec.default !== undefined) values[name] = spec.default;
    else
      throw new UsageError(
        `flag --${name} is required${spec.env ? ` (or set ${spec.env})` : ''}: ${allowedText(spec)}`,
      );
  }
  return values as FlagValues<S>;
}

export function helpText(usage: string, description: string, specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const left = `  --${name}${spec.kind === 'bool' ? '' : ` <${spec.kind === 'int' ? 'n' : 'value'}>`}`;
    const extra = [
      spec.default !== undefined ? `default ${String(spec.default)}` : 'required',
      spec.env ? `env ${spec.env}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return `${left.length >= 33 ? `${left}\n${' '.repeat(34)}` : left.padEnd(34)}${spec.help} (${extra})`;
  });
  return `Usage: ${usage}\n\n${description}\n\nFlags:\n${rows.join('\n')}\n  --help                          print this help\n`;
}
