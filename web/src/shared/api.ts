// The one way the web apps talk to the server: bearer session token, JSON in and out, and a
// typed error that carries the server's stable error code.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "bw-token";

/** The session token from `POST /api/v1/auth/login`, kept for this tab only. */
export function token(): string | null {
  // `#token=` in the address still works for the bootstrap administrator token.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string | null): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized: () => void = () => {};
/** Called when the server answers 401 (session expired or revoked). */
export function setUnauthorizedHandler(f: () => void): void {
  onUnauthorized = f;
}

export async function api<T>(path: string, opts: RequestInit = {}): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const r = await fetch(path, { ...opts, headers: { ...headers, ...(opts.headers as Record<string, string> | undefined) } });
  if (r.status === 401) {
    onUnauthorized();
  }
  if (!r.ok) {
    const body = (await r.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    throw new ApiError(r.status, body.error?.code ?? String(r.status), body.error?.message ?? `${path}: ${r.status}`);
  }
  if (r.status === 204) return undefined as T;
  return (await r.json()) as T;
}

export interface Account {
  id: number;
  username: string;
  role: string;
  person_id?: number | null;
}

export interface LoginAnswer {
  token: string;
  expires_at: string;
  account: Account;
}

/** Logs in; resolves with the session or rejects with an `ApiError` (401 = wrong credentials). */
export async function login(username: string, password: string, totp?: string): Promise<LoginAnswer> {
  const body: Record<string, string> = { username, password };
  if (totp) body.totp = totp;
  const v = await api<LoginAnswer>("/api/v1/auth/login", { method: "POST", body: JSON.stringify(body) });
  setToken(v.token);
  return v;
}
