// The Grafana dashboard and the alert rules against real metrics: a real Prometheus (Debian's) scrapes the
// running controllers and helpers, loads examples/monitoring/prometheus-rule.yaml, and runs every dashboard
// query. A query or alert that names a metric or label the operator does not export fails the test.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { createFixtures } from '../../harness/fixture-app.js';
import { core, createNamespace, eventually, readyPods } from './cluster.js';
import { controllerPods, helperPods, installOperator, protectedStateApp } from './operator.js';

const ns = 'it-observability';
const PORT = 19090;
const prom = `http://127.0.0.1:${PORT}`;
/** Labels Prometheus adds when it scrapes, and the bucket label of histograms. */
const SCRAPE_LABELS = new Set(['job', 'instance', 'le']);

interface Query {
  where: string;
  expr: string;
}

function dashboardQueries(): Query[] {
  const d = JSON.parse(readFileSync('examples/monitoring/grafana-dashboard.json', 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
    templating: { list: { name: string; query?: string | { query: string } }[] };
  };
  const out: Query[] = [];
  for (const p of d.panels)
    for (const t of p.targets) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of d.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = q && /^label_values\((.*),\s*(\w+)\)$/.exec(q);
    // label_values(<selector>, <label>): the selector must select series that carry the label.
    if (m) out.push({ where: `variable $${v.name}`, expr: `count by (${m[2]}) (${m[1]})` });
  }
  return out;
}

function ruleGroups(): { groups: { name: string; rules: { alert: string; expr: string }[] }[] } {
  const [rule] = parseAllDocuments(readFileSync('examples/monitoring/prometheus-rule.yaml', 'utf8'))
    .map((d) => d.toJS() as { kind: string; spec: { groups: never } })
    .filter((d) => d.kind === 'PrometheusRule');
  return rule!.spec;
}

/** Grafana's variables, as a user with "All" selected has them. */
const grafana = (expr: string) =>
  expr.replace(/\$__rate_interval/g, '2m').replace(/\$(namespace|policy|job)\b/g, '.*');

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${prom}${path}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error}`);
  return body.data;
}

const metricNames = (expr: string) => [...new Set(expr.match(/\b(pullstate|process)_[a-z0-9_]+\b/g) ?? [])];

function labelNames(expr: string): string[] {
  const out = new Set<string>();
  for (const m of expr.matchAll(/\b([a-z_][a-z0-9_]*)\s*(=~|!~|!=|=)\s*"/g)) out.add(m[1]!);
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g))
    for (const l of m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean))
      out.add(l);
  return [...out];
}

/** What is wrong with an expression against what Prometheus has scraped: unknown metrics or labels. */
async function problems(q: Query, known: Set<string>): Promise<string[]> {
  const expr = grafana(q.expr);
  const out: string[] = [];
  await api(`/api/v1/query?query=${encodeURIComponent(expr)}`).catch((err: Error) =>
    out.push(`${q.where}: ${err.message}`),
  );
  const metrics = metricNames(expr);
  for (const m of metrics) if (!known.has(m)) out.push(`${q.where}: metric ${m} is not exported`);
  const labelsSeen = new Set<string>();
  for (const m of metrics.filter((x) => known.has(x))) {
    const series = await api<Record<string, string>[]>(`/api/v1/series?match[]=${encodeURIComponent(m)}`);
    for (const s of series) for (const l of Object.keys(s)) labelsSeen.add(l);
  }
  for (const l of labelNames(expr))
    if (!SCRAPE_LABELS.has(l) && !labelsSeen.has(l))
      out.push(`${q.where}: label ${l} is not on ${metrics.join(', ') || 'any metric'}`);
  return out;
}

let prometheus: ChildProcess | undefined;
let dir: string;

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await createFixtures(core, ns);
  await protectedStateApp(ns, 'app', 1);
  await eventually(
    'the app Ready',
    async () => (await readyPods(ns, 'app=app')).length === 1 || undefined,
    90_000,
  );

  dir = mkdtempSync(join(tmpdir(), 'psop-prometheus-'));
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, stringify(ruleGroups()));
  // promtool refuses what Prometheus would refuse: syntax, templates, durations.
  execFileSync('promtool', ['check', 'rules', rules], { stdio: 'pipe' });
  const targets = (pods: { status?: { podIP?: string } }[], port: number) =>
    pods.map((p) => `${p.status!.podIP}:${port}`);
  const config = {
    // Scraped as a real Prometheus does (30 s), evaluated every second: an alert that counts the scrape lag
    // as checkpoint age fires on a healthy 1 s policy.
    global: { scrape_interval: '30s', evaluation_interval: '1s' },
    rule_files: [rules],
    scrape_configs: [
      {
        job_name: 'pull-state-controller',
        static_configs: [{ targets: targets(await controllerPods(), 9090) }],
      },
      { job_name: 'pull-state-helper', static_configs: [{ targets: targets(await helperPods(), 9501) }] },
    ],
  };
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${PORT}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  prometheus.stderr!.on('data', (d: Buffer) => (log = (log + String(d)).slice(-4000)));
  await eventually(
    'Prometheus scraping every controller and helper',
    async () => {
      const t = await api<{ activeTargets: { health: string }[] }>('/api/v1/targets').catch(() => undefined);
      return t && t.activeTargets.length > 0 && t.activeTargets.every((x) => x.health === 'up')
        ? true
        : undefined;
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nPrometheus log:\n${log}`);
  });
  // Two scrapes of the policy's series: the rules have seen it more than once.
  await eventually(
    'per-policy series scraped twice',
    async () => {
      const r = await api<{ result: { value: [number, string] }[] }>(
        `/api/v1/query?query=${encodeURIComponent(`count_over_time(pullstate_policy_interval_seconds{namespace="${ns}"}[5m])`)}`,
      );
      return Number(r.result[0]?.value[1] ?? 0) >= 2 || undefined;
    },
    120_000,
  );
}, 420_000);

afterAll(() => {
  prometheus?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dashboard and alerts against real metrics', () => {
  it('the checker itself flags an unknown metric and an unknown label', async () => {
    const known = new Set(await api<string[]>('/api/v1/label/__name__/values'));
    expect(await problems({ where: 'probe', expr: 'rate(pullstate_no_such_total[1m])' }, known)).toEqual([
      'probe: metric pullstate_no_such_total is not exported',
    ]);
    expect(
      await problems({ where: 'probe', expr: 'sum by (podname) (pullstate_helper_pulls_total)' }, known),
    ).toEqual(['probe: label podname is not on pullstate_helper_pulls_total']);
  });

  it('every dashboard query and variable uses metrics and labels that exist', async () => {
    const known = new Set(await api<string[]>('/api/v1/label/__name__/values'));
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(10);
    const found: string[] = [];
    for (const q of queries) found.push(...(await problems(q, known)));
    expect(found).toEqual([]);
  });

  it('every alert uses metrics and labels that exist, loads, evaluates, and is quiet on a healthy operator', async () => {
    const known = new Set(await api<string[]>('/api/v1/label/__name__/values'));
    const alerts = ruleGroups().groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'PullStateCheckpointStale',
      'PullStateHelperDown',
      'PullStateNoLeader',
      'PullStateRestoreFailed',
    ]);
    const found: string[] = [];
    for (const a of alerts)
      found.push(...(await problems({ where: `alert ${a.alert}`, expr: a.expr }, known)));
    expect(found).toEqual([]);
    const loaded = await eventually('every rule evaluated', async () => {
      const r = await api<{
        groups: { rules: { name: string; health: string; state: string; lastError?: string }[] }[];
      }>('/api/v1/rules');
      const rules = r.groups.flatMap((g) => g.rules);
      return rules.length === 4 && rules.every((x) => x.health === 'ok') ? rules : undefined;
    });
    for (const r of loaded)
      expect({ alert: r.name, state: r.state }).toEqual({ alert: r.name, state: 'inactive' });
    // Not at any evaluation since the policy's first scrape either (every second of the last minute).
    const stale = ruleGroups().groups[0]!.rules.find((r) => r.alert === 'PullStateCheckpointStale')!.expr;
    const end = Date.now() / 1000;
    const range = await api<{ result: { metric: Record<string, string>; values: unknown[] }[] }>(
      `/api/v1/query_range?query=${encodeURIComponent(stale)}&start=${end - 60}&end=${end}&step=1`,
    );
    expect(range.result.filter((x) => x.metric.namespace === ns)).toEqual([]);
  });

  it('counts pulls per policy with one spelling of results, and says which build runs', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const value = async (expr: string) => {
      const r = await api<{ result: { value: [number, string] }[] }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}`,
      );
      return r.result.map((x) => Number(x.value[1]));
    };
    expect(await value(`pullstate_pulls_total{namespace="${ns}",policy="app",result="Succeeded"}`)).toEqual([
      expect.any(Number),
    ]);
    expect(await value(`sum(pullstate_helper_pulls_total{namespace="${ns}",result="Succeeded"})`)).toEqual([
      expect.any(Number),
    ]);
    expect(await value(`count(pullstate_pulls_total{result=~"success|failure"})`)).toEqual([]);
    const controllers = (await controllerPods()).length;
    const helpers = (await helperPods()).length;
    expect(await value(`count(pullstate_build_info{version="${version}"})`)).toEqual([controllers]);
    expect(await value(`count(pullstate_helper_build_info{version="${version}"})`)).toEqual([helpers]);
  });

  it('the stale-checkpoint condition turns true for a policy whose pulls fail', async () => {
    const [pod] = await readyPods(ns, 'app=app');
    await eventually('control accepted', () =>
      fetch(`http://${pod!.status!.podIP}:8080/control`, {
        method: 'POST',
        body: JSON.stringify({ status: 500 }),
      }),
    );
    const stale = ruleGroups().groups[0]!.rules.find((r) => r.alert === 'PullStateCheckpointStale')!.expr;
    await eventually(
      'the alert expression selects the failing policy',
      async () => {
        const r = await api<{ result: { metric: Record<string, string> }[] }>(
          `/api/v1/query?query=${encodeURIComponent(stale)}`,
        );
        return r.result.some((x) => x.metric.namespace === ns && x.metric.policy === 'app') || undefined;
      },
      // The next scrape (30 s) after the checkpoint is three intervals old.
      120_000,
    );
    await fetch(`http://${pod!.status!.podIP}:8080/control`, {
      method: 'POST',
      body: JSON.stringify({ status: 200 }),
    });
  });
});
