// Renders docs/adaptive-polling.svg and .png: upstream requests against lag, fixed vs
// adaptive — the model's sweep of the knob (bench/adaptive-model.ts) and, when given,
// the points a live `npm run bench -- --adaptive` measured (its JSON).
// `npx tsx bench/adaptive-plot.ts [bench/results/adaptive-….json]`
import fs from 'node:fs';
import path from 'node:path';
import { MODEL_MIX, modelRun } from './adaptive-model.js';
import { DECAY, tuningFor } from '../src/durations/tuning.js';
import { ROOT } from './lib.js';

const knobs = [3, 3.5, 4, 5, 5.7, 6, 6.5, 7, 8];
const fixed = modelRun(undefined);
const sweep = knobs.map((lag) => {
  const r = modelRun(tuningFor(lag), MODEL_MIX, { memory: DECAY.samples });
  return { lag, x: r.polls / fixed.polls, p50: r.lagP50 / fixed.lagP50, p99: r.lagP99 / fixed.lagP99 };
});

type Live = { name: string; x: number; p50: number; p99: number };
const live: Live[] = [];
const file = process.argv[2];
if (file) {
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { results: Record<string, { requests: number; p50: number; p99: number }> };
  const base = j.results.fixed!;
  for (const [name, r] of Object.entries(j.results)) live.push({ name, x: r.requests / base.requests, p50: r.p50 / base.p50, p99: r.p99 / base.p99 });
}

const W = 720;
const H = 460;
const M = { l: 70, r: 30, t: 50, b: 60 };
const x0 = 0.5, x1 = 1.05, y0 = 0.4, y1 = 1.5;
const X = (v: number) => M.l + ((v - x0) / (x1 - x0)) * (W - M.l - M.r);
const Y = (v: number) => H - M.b - ((Math.min(y1, v) - y0) / (y1 - y0)) * (H - M.t - M.b);
const e: string[] = [];
e.push(`<rect width="${W}" height="${H}" fill="white"/>`);
e.push(`<text x="${W / 2}" y="26" text-anchor="middle" font-size="16" font-weight="600">Upstream requests vs webhook lag, relative to the fixed 3–6 s cadence</text>`);
for (let v = 0.5; v <= 1.0001; v += 0.1) {
  e.push(`<line x1="${X(v)}" y1="${M.t}" x2="${X(v)}" y2="${H - M.b}" stroke="#eee"/><text x="${X(v)}" y="${H - M.b + 18}" text-anchor="middle" font-size="12">${v.toFixed(1)}×</text>`);
}
for (let v = 0.4; v <= 1.5001; v += 0.2) {
  e.push(`<line x1="${M.l}" y1="${Y(v)}" x2="${W - M.r}" y2="${Y(v)}" stroke="#eee"/><text x="${M.l - 8}" y="${Y(v) + 4}" text-anchor="end" font-size="12">${v.toFixed(1)}×</text>`);
}
e.push(`<line x1="${M.l}" y1="${Y(1)}" x2="${W - M.r}" y2="${Y(1)}" stroke="#999" stroke-dasharray="4 3"/>`);
e.push(`<text x="${(M.l + W - M.r) / 2}" y="${H - 15}" text-anchor="middle" font-size="13">upstream requests per task (× fixed)</text>`);
e.push(`<text transform="translate(18 ${(M.t + H - M.b) / 2}) rotate(-90)" text-anchor="middle" font-size="13">webhook lag (× fixed)</text>`);
const line = (k: 'p50' | 'p99', color: string) => {
  e.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${sweep.map((p) => `${X(p.x)},${Y(p[k])}`).join(' ')}"/>`);
  for (const p of sweep) e.push(`<circle cx="${X(p.x)}" cy="${Y(p[k])}" r="3.5" fill="${color}"/>`);
};
line('p50', '#1f77b4');
line('p99', '#d62728');
for (const p of sweep) if (p.lag === 3 || p.lag === 6 || p.lag === 8) e.push(`<text x="${X(p.x) + 6}" y="${Y(p.p50) - 6}" font-size="11" fill="#1f77b4">${p.lag} s</text>`);
e.push(`<rect x="${X(1) - 5}" y="${Y(1) - 5}" width="10" height="10" fill="black"/><text x="${X(1) - 8}" y="${Y(1) - 10}" text-anchor="end" font-size="12">fixed</text>`);
for (const p of live.filter((l) => l.name !== 'fixed')) {
  e.push(`<path d="M${X(p.x)} ${Y(p.p50) - 6} l6 10 h-12 z" fill="none" stroke="#1f77b4" stroke-width="2"/>`);
  e.push(`<path d="M${X(p.x)} ${Y(p.p99) - 6} l6 10 h-12 z" fill="none" stroke="#d62728" stroke-width="2"/>`);
  e.push(`<text x="${X(p.x) + 9}" y="${Y(Math.max(p.p50, p.p99)) - 8}" font-size="11" fill="#333">${p.name}</text>`);
}
// the issue's targets: ≤ 0.6× requests at lag ≤ 1.05× (p50) / 1.1× (p99); lag p50 ≤ 0.7× at ≤ 1.0× requests
e.push(`<line x1="${X(0.6)}" y1="${M.t}" x2="${X(0.6)}" y2="${H - M.b}" stroke="#2ca02c" stroke-dasharray="5 4"/><text x="${X(0.6) + 4}" y="${H - M.b - 6}" font-size="11" fill="#2ca02c">0.6× target</text>`);
e.push(`<line x1="${M.l}" y1="${Y(1.1)}" x2="${X(0.6)}" y2="${Y(1.1)}" stroke="#2ca02c" stroke-dasharray="5 4"/>`);
e.push(`<line x1="${X(0.6)}" y1="${Y(0.7)}" x2="${X(1.0)}" y2="${Y(0.7)}" stroke="#2ca02c" stroke-dasharray="5 4"/><text x="${X(0.6) + 4}" y="${Y(0.7) + 14}" font-size="11" fill="#2ca02c">lag p50 0.7× target</text>`);
const lx = M.l + 14;
e.push(`<g font-size="12"><circle cx="${lx}" cy="${M.t + 14}" r="4" fill="#1f77b4"/><text x="${lx + 10}" y="${M.t + 18}">lag p50, model learning online (knob TASKHOOK_POLL_LAG_S 3–8 s)</text>`);
e.push(`<circle cx="${lx}" cy="${M.t + 32}" r="4" fill="#d62728"/><text x="${lx + 10}" y="${M.t + 36}">lag p99, model</text>`);
if (live.length) e.push(`<path d="M${lx} ${M.t + 44} l6 10 h-12 z" fill="none" stroke="#555" stroke-width="2"/><text x="${lx + 10}" y="${M.t + 54}">measured by npm run bench -- --adaptive (shared 2-core box)</text>`);
e.push('</g>');
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">${e.join('')}</svg>\n`;
const out = path.join(ROOT, 'docs', 'adaptive-polling.svg');
fs.writeFileSync(out, svg);
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' });
const page = await browser.newPage({ viewport: { width: W, height: H } });
await page.setContent(svg);
await page.locator('svg').screenshot({ path: out.replace(/\.svg$/, '.png') });
await browser.close();
console.log(`wrote ${path.relative(ROOT, out)} and .png`);
