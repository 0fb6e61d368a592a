import type { PullStateRestoreGeneration } from '../../api/index.js';
import type { Copy } from '../checkpoints/checkpoint-book.js';

export type GenerationChoice = { copy: Copy } | { error: string };

/**
 * Which stored generation a PullStateRestore asks for (pure). `generations` is every copy known on a node
 * that can serve it, newest first; the same generation on several nodes counts once (the first is taken).
 * When a copy lacks its pull time (older helpers), its storage time stands in for it.
 */
export function chooseGeneration(
  generations: readonly Copy[],
  want: PullStateRestoreGeneration,
): GenerationChoice {
  const distinct: Copy[] = [];
  for (const c of [...generations].sort((a, b) => b.sequence - a.sequence))
    if (!distinct.some((d) => d.sequence === c.sequence)) distinct.push(c);
  if (distinct.length === 0) return { error: 'no generation is stored on a node whose helper is Ready' };
  const from = want.from ?? 'Newest';
  if (from === 'Newest') return { copy: distinct[0]! };
  if (from === 'Index') {
    const index = want.index ?? 0;
    const copy = distinct[index];
    return copy
      ? { copy }
      : {
          error: `index ${index} is past the oldest stored generation; allowed: 0 to ${distinct.length - 1}`,
        };
  }
  const before = Date.parse(want.before ?? '');
  if (Number.isNaN(before)) return { error: `before "${want.before ?? ''}" is not an RFC 3339 time` };
  const copy = distinct.find((c) => (c.pulledAt ?? Date.parse(c.storedAt)) < before);
  if (copy) return { copy };
  const oldest = distinct[distinct.length - 1]!;
  return {
    error: `no generation was pulled before ${new Date(before).toISOString()}; the oldest stored is from ${new Date(oldest.pulledAt ?? Date.parse(oldest.storedAt)).toISOString()}`,
  };
}
