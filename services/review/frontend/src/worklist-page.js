// Sign-in and the worklist: every study with status, positive/examined, pN, flags and age;
// filter by status and text, sort by column, open a study.
import { api } from "./api.js";
import { age, currentUser, el, showError, showUser } from "./session.js";

const PN_ORDER = ["pN0", "pN1", "pN2", "pN3a", "pN3b"];
let rows = [];
let sortKey = "age_s";
let sortAscending = true;

function flagBadges(row) {
  const flags = [];
  const f = row.flags;
  if (f.below_ajcc_minimum) flags.push(["below-15", `${row.examined} LNs < 15`]);
  if (f.failed_slides) flags.push(["failed", `${f.failed_slides} failed slide(s)`]);
  if (f.qc_failed_slides) flags.push(["qc", `${f.qc_failed_slides} QC-failed slide(s)`]);
  if (f.itc_nodes) flags.push(["itc", `${f.itc_nodes} ITC-only node(s)`]);
  if (f.still_scoring) flags.push(["scoring", "still scoring"]);
  return flags;
}

function sortValue(row, key) {
  if (key === "pn_category") return row.pn_category ? PN_ORDER.indexOf("p" + row.pn_category) : -1;
  if (key === "flags") return flagBadges(row).length;
  if (key === "positive") return row.examined ? row.positive / row.examined : -1;
  return row[key] ?? "";
}

function render() {
  const status = document.getElementById("status-filter").value;
  const text = document.getElementById("search").value.trim().toLowerCase();
  const shown = rows
    .filter((r) => !status || r.status === status)
    .filter((r) => !text || r.study_id.toLowerCase().includes(text))
    .sort((a, b) => {
      const x = sortValue(a, sortKey);
      const y = sortValue(b, sortKey);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sortAscending ? order : -order;
    });
  const body = document.querySelector("#worklist-table tbody");
  body.replaceChildren();
  for (const row of shown) {
    const line = el("tr", "study-row");
    line.dataset.studyId = row.study_id;
    line.tabIndex = 0;
    const link = el("a", null, row.study_id);
    link.href = `study?study=${encodeURIComponent(row.study_id)}`;
    const first = el("td");
    first.append(link);
    const flags = el("td", "flags");
    for (const [kind, label] of flagBadges(row)) flags.append(el("span", `flag flag-${kind}`, label));
    line.append(
      first,
      el("td", `status status-${row.status.replace(" ", "-")}`, row.status),
      el("td", "positive", `${row.positive} / ${row.examined}`),
      el("td", "pn", row.pn_category ? "p" + row.pn_category : "—"),
      flags,
      el("td", "age", age(row.age_s)),
    );
    line.addEventListener("keydown", (event) => {
      if (event.key === "Enter") link.click();
    });
    body.append(line);
  }
  document.getElementById("worklist-count").textContent = `${shown.length} of ${rows.length} studies`;
}

async function load() {
  const error = document.getElementById("worklist-error");
  try {
    rows = await api.worklist();
    error.hidden = true;
    render();
  } catch (failure) {
    showError(error, failure);
  }
}

function showWorklist(user) {
  showUser(user);
  document.getElementById("sign-in").hidden = true;
  document.getElementById("worklist").hidden = false;
  document.getElementById("status-filter").addEventListener("change", render);
  document.getElementById("search").addEventListener("input", render);
  for (const header of document.querySelectorAll("#worklist-table th[data-sort]")) {
    header.addEventListener("click", () => {
      const key = header.dataset.sort;
      sortAscending = key === sortKey ? !sortAscending : true;
      sortKey = key;
      render();
    });
  }
  load();
  // New studies arrive as slides are scanned; the open worklist follows without a reload.
  window.setInterval(load, 15000);
}

async function main() {
  const user = await currentUser();
  if (user) return showWorklist(user);
  const form = document.getElementById("sign-in");
  form.hidden = false;
  document.getElementById("token").focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("token");
    try {
      await api.signIn(field.value);
      field.value = "";
      showWorklist(await currentUser());
    } catch (failure) {
      showError(document.getElementById("sign-in-error"), failure);
    }
  });
}

main();
