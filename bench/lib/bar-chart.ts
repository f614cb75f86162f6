// A grouped bar chart as a standalone SVG, for the docs: panels side by side, each with
// its own axis; in each panel one group of bars per configuration, one bar per series.
// No dependency: the SVG is written by hand.

export interface BarSeries {
  name: string;
  color: string;
}

export interface BarPanel {
  title: string;
  /** Shown after each bar's value (`µs`, `ms`, `MB`). */
  unit: string;
  /** Decimals of the bar labels. @default 1 */
  digits?: number;
  /** One group of bars per entry; `values` in the order of the chart's series (missing: no bar). */
  groups: ReadonlyArray<{ label: string; values: ReadonlyArray<number | undefined> }>;
}

export interface BarChart {
  title: string;
  /** Lines under the title (the machine, the settings). */
  notes?: readonly string[];
  series: readonly BarSeries[];
  panels: readonly BarPanel[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round step for about `ticks` intervals up to `max`: 1, 2 or 5 times a power of ten. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const mult = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) ?? 10;
  return mult * power;
}

function label(value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function barChartSvg(chart: BarChart): string {
  const panelW = 330;
  const panelH = 250;
  const gap = 30;
  const left = 50;
  const notes = chart.notes ?? [];
  const top = 50 + notes.length * 16 + 44;
  const width = left + chart.panels.length * (panelW + gap);
  const height = top + panelH + 90;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left - 30}" y="28" font-size="16" font-weight="bold">${esc(chart.title)}</text>`);
  notes.forEach((n, i) => out.push(`<text x="${left - 30}" y="${48 + i * 16}" fill="#555555">${esc(n)}</text>`));
  // Legend.
  let lx = left - 30;
  const ly = 50 + notes.length * 16 + 6;
  for (const s of chart.series) {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 17}" y="${ly}">${esc(s.name)}</text>`);
    lx += 30 + s.name.length * 7;
  }
  chart.panels.forEach((panel, p) => {
    const x0 = left + p * (panelW + gap);
    const y0 = top + panelH; // the baseline
    const digits = panel.digits ?? 1;
    const max = Math.max(0, ...panel.groups.flatMap((g) => g.values.filter((v): v is number => v !== undefined && Number.isFinite(v))));
    const step = max > 0 ? niceStep(max, 4) : 1;
    const axisMax = Math.max(step, Math.ceil((max * 1.12) / step) * step);
    const y = (value: number) => y0 - (value / axisMax) * (panelH - 20);
    out.push(`<text x="${x0 + panelW / 2}" y="${top - 4}" text-anchor="middle" font-weight="bold">${esc(panel.title)}</text>`);
    for (let t = 0; t <= axisMax + step / 1e6; t += step) {
      const ty = y(t);
      out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="${t === 0 ? '#333333' : '#e4e4e4'}"/>`);
      out.push(`<text x="${x0 - 6}" y="${(ty + 4).toFixed(1)}" text-anchor="end" fill="#555555">${esc(label(t, step < 1 ? 1 : 0))}</text>`);
    }
    const groupW = panelW / Math.max(1, panel.groups.length);
    const barW = Math.min(40, (groupW - 16) / Math.max(1, chart.series.length));
    panel.groups.forEach((group, g) => {
      const gx = x0 + g * groupW + (groupW - barW * chart.series.length) / 2;
      group.values.forEach((value, s) => {
        const color = chart.series[s]?.color ?? '#999999';
        const bx = gx + s * barW;
        if (value === undefined || !Number.isFinite(value)) {
          out.push(`<text x="${(bx + barW / 2).toFixed(1)}" y="${y0 - 4}" text-anchor="middle" fill="#999999" font-size="10">n/a</text>`);
          return;
        }
        const by = y(value);
        out.push(`<rect x="${(bx + 2).toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(y0 - by).toFixed(1)}" fill="${color}"/>`);
        out.push(`<text x="${(bx + barW / 2).toFixed(1)}" y="${(by - 4).toFixed(1)}" text-anchor="middle" font-size="10">${esc(label(value, digits))}</text>`);
      });
      group.label.split('\n').forEach((line, i) => {
        out.push(`<text x="${(x0 + g * groupW + groupW / 2).toFixed(1)}" y="${y0 + 16 + i * 14}" text-anchor="middle">${esc(line)}</text>`);
      });
    });
    const lines = Math.max(1, ...panel.groups.map((g) => g.label.split('\n').length));
    out.push(`<text x="${x0 + panelW / 2}" y="${y0 + 22 + lines * 14}" text-anchor="middle" fill="#555555">${esc(panel.unit)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
