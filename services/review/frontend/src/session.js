// The signed-in user in the page header, and the sign-out of the workstation session.
import { ApiError, api, useCsrfToken } from "./api.js";

/** The current session's user ({user_id, display_name, role, may_amend, csrf_token}) or null. */
export async function currentUser() {
  try {
    const user = await api.session();
    useCsrfToken(user.csrf_token);
    return user;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

/** Show `user` in the header and wire its "Sign out" button (back to the sign-in page). */
export function showUser(user) {
  const who = document.getElementById("who");
  who.textContent = `${user.display_name} (${user.role})`;
  who.dataset.role = user.role;
  const button = document.getElementById("end-session");
  button.hidden = false;
  button.addEventListener("click", async () => {
    await api.signOutOfSession().catch(() => null);
    window.location.assign("./");
  });
}

/** Put `error` (ApiError or other) into `element` as one readable line with its hint. */
export function showError(element, error) {
  const hint = error && error.hint ? ` ${error.hint}` : "";
  element.textContent = `${error && error.message ? error.message : String(error)}${hint}`;
  element.hidden = false;
}

/** "3 min", "2 h", "4 d" for an age in seconds. */
export function age(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

/** A new element `tag` with class `className` and text `text`. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
