// Dry-run highlighting: the API gives each finding's spans as offsets in Unicode
// scalar values (characters); JavaScript strings count UTF-16 units, so the text
// is split into code points first. The page renders the segments as text nodes
// (plain or inside <mark>), never as HTML.

export interface Span {
  start: number;
  end: number;
}

export interface Segment {
  text: string;
  /** The rules whose spans cover this segment; empty for plain text. */
  rules: string[];
}

export function highlightSegments(text: string, findings: { rule: string; spans?: Span[] }[]): Segment[] {
  const chars = Array.from(text);
  const n = chars.length;
  const spans: { start: number; end: number; rule: string }[] = [];
  for (const f of findings) {
    for (const s of f.spans ?? []) {
      const start = Math.max(0, Math.min(n, Math.trunc(s.start)));
      const end = Math.max(0, Math.min(n, Math.trunc(s.end)));
      if (start < end) spans.push({ start, end, rule: f.rule });
    }
  }
  const cuts = [...new Set([0, n, ...spans.flatMap((s) => [s.start, s.end])])].sort((a, b) => a - b);
  const out: Segment[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const a = cuts[i] as number;
    const b = cuts[i + 1] as number;
    const rules = [...new Set(spans.filter((s) => s.start <= a && s.end >= b).map((s) => s.rule))].sort();
    const piece = chars.slice(a, b).join("");
    const last = out[out.length - 1];
    if (last && last.rules.join() === rules.join()) last.text += piece;
    else out.push({ text: piece, rules });
  }
  return out;
}
