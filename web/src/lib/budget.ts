// Budget form checks, the same as the API's (budgets.rs `check`).

export interface BudgetForm {
  limit: string;
  warn: string;
  timezone: string;
}
export type BudgetProblems = Partial<Record<keyof BudgetForm, string>>;

const MAX_LIMIT_USD = 1e9;

export function budgetProblems(form: BudgetForm, knownZone: (tz: string) => boolean = isTimeZone): BudgetProblems {
  const problems: BudgetProblems = {};
  const limit = Number(form.limit);
  if (form.limit.trim() === "" || !Number.isFinite(limit) || limit <= 0 || limit > MAX_LIMIT_USD)
    problems.limit = "A positive amount of USD, at most 1,000,000,000.";
  const warn = Number(form.warn);
  if (form.warn.trim() === "" || !Number.isInteger(warn) || warn < 1 || warn > 100) problems.warn = "A whole percent from 1 to 100.";
  if (!form.timezone.trim()) problems.timezone = "A time zone is required (UTC, Europe/Paris…).";
  else if (!knownZone(form.timezone.trim())) problems.timezone = "Not a known IANA time zone.";
  return problems;
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Width of a spend bar: the share of the limit, capped at 100. */
export function spentPercent(spent: number, limit: number): number {
  if (!(limit > 0)) return 0;
  return Math.min(100, Math.max(0, (spent / limit) * 100));
}
