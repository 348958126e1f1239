// Formatting and small pure helpers shared by the pages.

export function formatCount(n: number): string {
  if (n >= 1_000_000) return (n / 1_000_000).toFixed(1).replace(/\.0$/, "") + "M";
  if (n >= 10_000) return (n / 1000).toFixed(1).replace(/\.0$/, "") + "k";
  return String(n);
}

export function formatUsd(n: number): string {
  if (n === 0) return "$0.00";
  if (Math.abs(n) < 0.01) return "<$0.01";
  return "$" + n.toFixed(2);
}

/** "12.5%" of part/whole; "0%" on an empty whole. */
export function percent(part: number, whole: number): string {
  if (!whole) return "0%";
  const p = (100 * part) / whole;
  return (p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + "%";
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function formatMs(us: number): string {
  return us >= 1_000_000 ? (us / 1_000_000).toFixed(2) + " s" : (us / 1000).toFixed(1) + " ms";
}

/** Proxy names: 1-64 of letters, digits, `._-`; the server has the last word. */
export function proxyNameProblem(name: string): string | null {
  if (!name) return "A name is required.";
  if (name.length > 64) return "At most 64 characters.";
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    return "Letters, digits, dot, dash and underscore; start with a letter or digit.";
  return null;
}

export function urlProblem(url: string): string | null {
  if (!url) return "An upstream URL is required.";
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") return "Use an http:// or https:// URL.";
    return null;
  } catch {
    return "Not a valid URL.";
  }
}

export function portProblem(port: string): string | null {
  if (port === "") return null;
  const n = Number(port);
  if (!Number.isInteger(n) || n < 1 || n > 65535) return "A port between 1 and 65535, or empty.";
  return null;
}
