// Settings form checks, the same as the API's: users (users.rs, password length
// from portcullis-core) and model prices (pricing.rs).
import { nameProblem } from "./systemPrompt";

export const PASSWORD_MIN = 12;
const PASSWORD_MAX = 256;
const PRICE_MAX = 100_000;

export function passwordProblem(password: string): string | null {
  const n = Array.from(password).length;
  if (n < PASSWORD_MIN) return `At least ${PASSWORD_MIN} characters.`;
  if (n > PASSWORD_MAX) return `At most ${PASSWORD_MAX} characters.`;
  return null;
}

export interface UserForm {
  username: string;
  password: string;
}
export type UserProblems = Partial<Record<keyof UserForm, string>>;

export function userProblems(form: UserForm): UserProblems {
  const problems: UserProblems = {};
  const name = nameProblem(form.username, "A user name");
  if (name) problems.username = name;
  const password = passwordProblem(form.password);
  if (password) problems.password = password;
  return problems;
}

export interface PriceForm {
  model: string;
  provider: string;
  input: string;
  output: string;
  cached: string;
}
export type PriceProblems = Partial<Record<keyof PriceForm, string>>;

const MODEL_NAME = /^[A-Za-z0-9._:/@-]+$/;

function priceProblem(value: string, optional: boolean): string | null {
  if (value.trim() === "") return optional ? null : "A price is required.";
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= PRICE_MAX) return "USD per million tokens, from 0 to 100,000.";
  return null;
}

export function priceProblems(form: PriceForm): PriceProblems {
  const problems: PriceProblems = {};
  if (!form.model.trim()) problems.model = "A model name is required.";
  else if (form.model.length > 128 || !MODEL_NAME.test(form.model)) problems.model = "1-128 characters of letters, digits and - . _ : / @.";
  if (form.provider && (form.provider.length > 32 || !MODEL_NAME.test(form.provider)))
    problems.provider = "1-32 characters of letters, digits and - . _ (empty: custom).";
  for (const [field, optional] of [["input", false], ["output", false], ["cached", true]] as const) {
    const p = priceProblem(form[field], optional);
    if (p) problems[field] = p;
  }
  return problems;
}
