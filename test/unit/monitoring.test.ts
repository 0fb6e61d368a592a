import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const RUNBOOKS = 'https://github.com/hitachienergy/pull-state-operator/blob/main/docs/operations.md#';

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as dashes. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

describe('example alerts', () => {
  const rules = parseAllDocuments(readFileSync('examples/monitoring/prometheus-rule.yaml', 'utf8'))
    .map(
      (d) =>
        d.toJS() as {
          kind: string;
          spec?: { groups: { rules: { alert: string; annotations: Record<string, string> }[] }[] };
        },
    )
    .filter((d) => d.kind === 'PrometheusRule')
    .flatMap((d) => d.spec!.groups.flatMap((g) => g.rules));
  const anchors = new Set(
    [...readFileSync('docs/operations.md', 'utf8').matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)),
  );

  it('each link to a runbook that exists in docs/operations.md', () => {
    expect(rules.length).toBeGreaterThan(0);
    for (const r of rules) {
      const url = r.annotations.runbook_url ?? '';
      expect({ alert: r.alert, url: url.slice(0, RUNBOOKS.length) }).toEqual({
        alert: r.alert,
        url: RUNBOOKS,
      });
      expect({ alert: r.alert, anchorExists: anchors.has(url.slice(RUNBOOKS.length)) }).toEqual({
        alert: r.alert,
        anchorExists: true,
      });
    }
  });
});
