// The management API client. The token lives in sessionStorage: it is gone when the tab
// closes, and it is never sent anywhere but this origin's API.

const KEY = 'fleethook.managementToken';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

/** An answer that was not 2xx; `message` is the API's own description when it gave one. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  if (body && typeof body === 'object' && body.description) return body.description;
  if (status === 0) return 'fleethook did not answer. Is the server running?';
  if (typeof body === 'string' && body) return `fleethook answered ${status}: ${body}`;
  return `fleethook answered ${status}`;
}

let onUnauthorized = () => {};
/** What to do when a signed-in request is refused with 401 (the token was replaced). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** Calls the API; resolves with the parsed body, rejects with an ApiError. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${session.token() ?? ''}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const del = (path) => api('DELETE', path);

let catalog = null;
/** The signal catalog and form choices, fetched once per page load. */
export function loadCatalog() {
  catalog ??= get('/api/v1/catalog').catch((e) => { catalog = null; throw e; });
  return catalog;
}

/** Query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}
