// SVG geometry for the dashboard's charts (no chart library).

export interface Series {
  name: string;
  values: number[];
}

/** The max of every series, at least 1 (an empty chart still has a scale). */
export function scaleMax(series: Series[]): number {
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  return Math.max(1, niceCeil(max));
}

/** Rounds up to 1, 2 or 5 times a power of ten. */
export function niceCeil(n: number): number {
  if (n <= 0) return 0;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

/** An SVG path `d` for values laid out across `width`, 0 at the bottom. */
export function linePath(values: number[], width: number, height: number, max: number): string {
  if (values.length === 0) return "";
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => {
      const x = values.length > 1 ? i * step : width / 2;
      const y = height - (Math.min(v, max) / max) * height;
      return `${i === 0 ? "M" : "L"}${round(x)},${round(y)}`;
    })
    .join(" ");
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
