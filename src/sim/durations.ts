// How long the simulated upstream's tasks take, per kind (capability, action, model):
// a log-normal around a median, with a long tail (a share of tasks taking several
// times as long). Drives the adaptive-polling bench and the demo; a kind's model can
// be swapped while running (the bench's "durations double mid-run"). Pure, with the
// random source passed in.
import type { Capability } from './tasks.js';

export interface DurationSpec {
  capability: Capability;
  action: string;
  model: string;
  /** median duration, ms (before any time compression) */
  medianMs: number;
  /** log-normal σ: 0.2 is ±20 % for most tasks */
  sigma: number;
  /** share of tasks in the long tail (default 0.03), taking tailFactor× as long */
  tailShare?: number;
  /** [min, max] factor of the tail (default [2, 5]) */
  tailFactor?: [number, number];
  /** relative frequency in a mix (default 1) */
  weight?: number;
}

/** The realistic mix the bench and the demo use (upstream's voice, image and two video kinds). */
export const REALISTIC_MIX: DurationSpec[] = [
  { capability: 'voice', action: 'clone', model: 'v1-real', medianMs: 7_000, sigma: 0.2, weight: 0.35 },
  { capability: 'image', action: 'generate', model: 'img-v1', medianMs: 16_000, sigma: 0.25, weight: 0.3 },
  { capability: 'video', action: 'generate', model: 'vid-v1', medianMs: 25_000, sigma: 0.3, weight: 0.2 },
  { capability: 'video', action: 'generate', model: 'vid-long', medianMs: 90_000, sigma: 0.3, weight: 0.15 },
];

export const specName = (s: Pick<DurationSpec, 'capability' | 'action' | 'model'>): string => `${s.capability}/${s.action}/${s.model}`;

/** One duration (ms) of the kind, time-compressed by `scale`. */
export function drawDurationMs(spec: DurationSpec, random: () => number, scale = 1): number {
  const u = Math.max(1e-12, random());
  const v = random();
  let d = spec.medianMs * Math.exp(spec.sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  if (random() < (spec.tailShare ?? 0.03)) {
    const [lo, hi] = spec.tailFactor ?? [2, 5];
    d *= lo + (hi - lo) * random();
  }
  return Math.max(1, d * scale);
}

/** A kind of the mix, drawn by weight. */
export function pickSpec(mix: readonly DurationSpec[], random: () => number): DurationSpec {
  const total = mix.reduce((a, s) => a + (s.weight ?? 1), 0);
  let x = random() * total;
  for (const s of mix) {
    x -= s.weight ?? 1;
    if (x < 0) return s;
  }
  return mix[mix.length - 1]!;
}
