// The review service's HTTP API as the workstation uses it: same-origin requests carrying the
// HttpOnly session cookie; every change also carries the session's CSRF token.

export class ApiError extends Error {
  /** status: HTTP status; code: the service's error code (e.g. EDIT_CONFLICT); hint: what to do. */
  constructor(status, code, message, hint) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint || "";
  }
}

let csrfToken = "";

/** Remember the CSRF token of the signed-in session (from POST/GET /ui/session). */
export function useCsrfToken(token) {
  csrfToken = token || "";
}

/** method, path (same origin), optional JSON body -> parsed JSON (null for 204); throws ApiError. */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "NETWORK", "The review service cannot be reached.", "Check the connection and retry.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (error) {
    parsed = null;
  }
  if (!response.ok) {
    const detail = parsed && typeof parsed === "object" ? parsed : {};
    let message = detail.message || `The service answered ${response.status}.`;
    if (Array.isArray(detail.detail)) {
      message = detail.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
    throw new ApiError(response.status, detail.error || "HTTP_" + response.status, message, detail.hint);
  }
  return parsed;
}

export const api = {
  session: () => request("GET", "/ui/session"),
  signIn: (token) => request("POST", "/ui/session", { token }),
  signOutOfSession: () => request("DELETE", "/ui/session"),
  worklist: (status) => request("GET", "/ui/api/worklist" + (status ? `?status=${encodeURIComponent(status)}` : "")),
  study: (studyId) => request("GET", `/studies/${encodeURIComponent(studyId)}`),
  slideView: (slideId) => request("GET", `/ui/api/slides/${encodeURIComponent(slideId)}/view`),
  signOutPreview: (studyId) => request("GET", `/studies/${encodeURIComponent(studyId)}/sign-out-preview`),
  signOut: (studyId, body) => request("POST", `/studies/${encodeURIComponent(studyId)}/sign-out`, body),
  setLabel: (lnId, body) => request("PUT", `/lymph-nodes/${encodeURIComponent(lnId)}/label`, body),
  setContour: (lnId, body) => request("PUT", `/lymph-nodes/${encodeURIComponent(lnId)}/contour`, body),
  setDeposit: (lnId, body) => request("PUT", `/lymph-nodes/${encodeURIComponent(lnId)}/deposit-size`, body),
  remove: (lnId, body) => request("POST", `/lymph-nodes/${encodeURIComponent(lnId)}/remove`, body),
  addNode: (slideId, body) => request("POST", `/slides/${encodeURIComponent(slideId)}/lymph-nodes`, body),
  eventsUrl: (studyId) => `/ui/api/studies/${encodeURIComponent(studyId)}/events`,
};
