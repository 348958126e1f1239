// A small typed client for the admin API. Paths, parameters, bodies and answers
// come from `schema.d.ts`, generated from the gateway's /api/v1/openapi.json
// (`npm run gen-api`; the e2e run fails if it no longer matches the binary).
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Method = "get" | "post" | "put" | "patch" | "delete";

type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : undefined;
type Responses<O> = O extends { responses: infer R } ? R : never;
export type Answer<O> =
  200 extends keyof Responses<O>
    ? JsonOf<Responses<O>[200]>
    : 201 extends keyof Responses<O>
      ? JsonOf<Responses<O>[201]>
      : undefined;
type BodyOf<O> = O extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? Q : never;

export interface CallOptions<O> {
  /** Values for `{id}`-style segments. */
  path?: Record<string, string>;
  query?: QueryOf<O>;
  body?: BodyOf<O>;
  signal?: AbortSignal;
}

/** An error answer of the admin API: `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Every problem found, for a 422 (`unprocessable`). */
    readonly problems: string[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** `/api/v1/keys/{id}` + {id: "a b"} + {limit: 5} -> `/api/v1/keys/a%20b?limit=5`. */
export function buildUrl(
  template: string,
  path: Record<string, string> = {},
  query: Record<string, unknown> = {},
): string {
  const url = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = path[name];
    if (value === undefined) throw new Error(`missing path parameter ${name} for ${template}`);
    return encodeURIComponent(value);
  });
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    qs.append(key, String(value));
  }
  const text = qs.toString();
  return text ? `${url}?${text}` : url;
}

/** The error an answer carries, whatever its shape. */
export async function errorOf(response: Response): Promise<ApiError> {
  let code = "http_" + response.status;
  let message = response.statusText || `HTTP ${response.status}`;
  let problems: string[] = [];
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; problems?: unknown } };
    if (body?.error?.message) message = body.error.message;
    if (body?.error?.code) code = body.error.code;
    if (Array.isArray(body?.error?.problems)) problems = body.error.problems.filter((p): p is string => typeof p === "string");
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message, problems);
}

export interface ClientConfig {
  token: () => string | null;
  /** Called on 401 (expired or revoked session). */
  onUnauthenticated?: () => void;
  fetch?: typeof fetch;
  baseUrl?: string;
}

export function createClient(config: ClientConfig) {
  const doFetch = config.fetch ?? ((input, init) => fetch(input, init));
  async function call<P extends keyof paths, M extends Method>(
    method: M,
    path: P,
    options: CallOptions<Op<P, M>> = {},
  ): Promise<Answer<Op<P, M>>> {
    const url =
      (config.baseUrl ?? "") +
      buildUrl(path as string, options.path, (options.query ?? {}) as Record<string, unknown>);
    const headers: Record<string, string> = { accept: "application/json" };
    const token = config.token();
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const response = await doFetch(url, {
      method: method.toUpperCase(),
      headers,
      body,
      signal: options.signal,
    });
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) config.onUnauthenticated?.();
      throw error;
    }
    if (response.status === 204) return undefined as Answer<Op<P, M>>;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as Answer<Op<P, M>>;
  }
  return { call };
}

export type Client = ReturnType<typeof createClient>;
