import { readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import { projectFile } from '../api/project-files.js';

/** The version of this build (package.json), for `pullstate_build_info`. */
export function buildVersion(): string {
  try {
    return (JSON.parse(readFileSync(projectFile('package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `<prefix>_build_info{version,nodejs}` = 1: which build runs where (dashboards join on it). */
export function registerBuildInfo(registry: Registry, name: string): void {
  new Gauge({
    name,
    help: 'Always 1; the labels say which build runs (version) on which Node.js (nodejs).',
    labelNames: ['version', 'nodejs'],
    registers: [registry],
  }).set({ version: buildVersion(), nodejs: process.version }, 1);
}
