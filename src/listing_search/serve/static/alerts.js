/* Saved searches and their alerts (issue 33), apart from app.js: "Save this search" beside the results,
 * an Alerts count in the header kept current by the alert stream, and on the Saved page the buyer's saved
 * searches (each with Delete) and the new listings that matched them (each opens the listing).
 *
 * The buyer is anonymous: this page makes a random token (32 bytes) on the first save, keeps it in this
 * browser and sends it as the X-Buyer-Token header; the stream (EventSource cannot send headers) is
 * opened with the HttpOnly cookie POST v1/alerts/session sets. The token never goes in an address.
 * From app.js it reads the search on screen (searchOfForm) and opens listings with goToListing. */
"use strict";

(() => {
  const TOKEN_KEY = "listing-search.buyer-token";
  const SEEN_KEY = "listing-search.alerts-seen"; // the newest alert id the buyer has seen listed
  const MAX_ALERTS = 500;
  const RECONNECT_MS = 3000;

  const alerts = []; // the buyer's alerts, oldest first
  let searches = []; // the buyer's saved searches
  let savedKey = null; // the search on screen when it was saved ("Saved" until it changes)
  let source = null;
  let saving = false; // a save is on its way: another press does nothing

  /* ---------- the token and the API ---------- */

  function storedToken() {
    try { return localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function makeToken() {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    try { localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off: this visit only */ }
    return token;
  }

  let sessionToken = storedToken();

  async function call(path, options = {}) {
    const headers = { Accept: "application/json", "X-Buyer-Token": sessionToken, ...(options.headers ?? {}) };
    let resp;
    try {
      resp = await fetch(`v1/${path}`, { ...options, headers });
    } catch (e) {
      throw new Error("Could not reach the server. Check your connection and try again.");
    }
    if (resp.status === 204) return null;
    let body = null;
    try { body = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) {
      const detail = typeof body?.detail === "string" ? body.detail : `the server answered ${resp.status}`;
      throw new Error(detail.charAt(0).toUpperCase() + detail.slice(1));
    }
    return body;
  }

  /* ---------- what this script adds to the page ---------- */

  function make(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  const count = make("span", { id: "alerts-count", class: "alerts-count" });
  const link = make("a", { id: "alerts-link", class: "saved-link alerts-link", href: "saved#alerts-heading" },
    make("span", { class: "bell", "aria-hidden": "true" }), " Alerts", count);
  link.hidden = true;
  document.querySelector("header.site nav")?.append(link);

  const saveButton = make("button", { type: "button", id: "save-search", class: "more-button save-search" });
  const saveStatus = make("p", { id: "save-search-status", class: "save-search-status", role: "status" });
  const saveBox = make("div", { class: "save-search-box" }, saveButton, saveStatus);
  saveBox.hidden = true;
  document.querySelector("#results .results-bar")?.after(saveBox);

  const announcer = make("p", { id: "alerts-announce", class: "visually-hidden", "aria-live": "polite" });
  document.body.append(announcer);

  const searchesList = make("ul", { id: "saved-searches-list", class: "saved-searches" });
  const searchesStatus = make("p", { id: "saved-searches-status", class: "status", role: "status" });
  const searchesEmpty = make("p", { id: "saved-searches-empty", class: "empty",
    text: "No saved searches. Search, then press “Save this search” to hear of new listings that match." });
  const alertsList = make("ul", { id: "alerts-list", class: "alerts-list" });
  const alertsEmpty = make("p", { id: "alerts-empty", class: "empty", text: "No new listings for your searches yet." });
  const savedView = document.getElementById("saved-view");
  savedView?.append(
    make("section", { id: "saved-searches", class: "alerts-section", "aria-labelledby": "saved-searches-heading" },
      make("h2", { id: "saved-searches-heading", tabindex: "-1", text: "Saved searches" }),
      make("p", { class: "summary", text: "Kept for this browser; a search unused for 90 days is deleted." }),
      searchesStatus, searchesEmpty, searchesList),
    make("section", { id: "alerts", class: "alerts-section", "aria-labelledby": "alerts-heading" },
      make("h2", { id: "alerts-heading", tabindex: "-1", text: "New listings for your searches" }),
      alertsEmpty, alertsList));

  /* ---------- Save this search ---------- */

  function shownSearch() {
    return typeof searchOfForm === "function" ? searchOfForm() : null;
  }

  function keyOf(s) {
    return s ? JSON.stringify([s.words, s.photo ? `${s.photo.name}:${s.photo.size}` : null, s.filters]) : null;
  }

  function hasSearch(s) {
    return Boolean(s && (s.words || s.photo || Object.keys(s.filters).length));
  }

  /** The button follows the search on screen: offered for any search, "Saved" for the one just saved. */
  function syncSaveButton() {
    const s = shownSearch();
    saveBox.hidden = !hasSearch(s) || !document.getElementById("results-list")?.isConnected;
    const saved = savedKey !== null && keyOf(s) === savedKey;
    saveButton.textContent = saved ? "Search saved" : "Save this search";
    saveButton.setAttribute("aria-pressed", String(saved));
    if (!saved) saveStatus.textContent = "";
  }

  async function saveSearch() {
    const s = shownSearch();
    if (!hasSearch(s) || keyOf(s) === savedKey || saving) return;
    if (!sessionToken) sessionToken = makeToken();
    const form = new FormData();
    if (s.words) form.append("text", s.words);
    if (s.photo) form.append("image", s.photo, s.photo.name || "photo");
    for (const [name, value] of Object.entries(s.filters)) form.append(name, String(value));
    if (s.spelling === false) form.append("spelling", "false");
    // aria-disabled, not disabled: a disabled button drops the keyboard focus to the page's start.
    saving = true;
    saveButton.setAttribute("aria-disabled", "true");
    saveStatus.textContent = "Saving…";
    try {
      const saved = await call("saved-searches", { method: "POST", body: form });
      savedKey = keyOf(s);
      syncSaveButton();
      saveStatus.textContent = `Saved: you will hear here of new listings matching ${saved.label}.`;
      searches.push(saved);
      showCount();
      listen();
    } catch (e) {
      saveStatus.textContent = `Not saved: ${e.message}`;
    } finally {
      saving = false;
      saveButton.removeAttribute("aria-disabled");
    }
  }

  /* ---------- alerts: the count, the stream, the lists ---------- */

  function seenId() {
    try { return Number(localStorage.getItem(SEEN_KEY) ?? 0) || 0; } catch (e) { return 0; }
  }

  function markSeen() {
    const last = alerts.length ? alerts[alerts.length - 1].id : 0;
    try { if (last > seenId()) localStorage.setItem(SEEN_KEY, String(last)); } catch (e) { /* storage off */ }
    showCount();
  }

  function showCount() {
    link.hidden = !sessionToken;
    const n = alerts.filter((a) => a.id > seenId()).length;
    count.textContent = n ? ` (${n} new)` : "";
    link.setAttribute("aria-label", n ? `Alerts: ${n} new ${n === 1 ? "listing" : "listings"}` : "Alerts");
  }

  function take(body) {
    const known = new Set(alerts.map((a) => a.id));
    const fresh = body.alerts.filter((a) => !known.has(a.id));
    alerts.push(...fresh);
    alerts.splice(0, Math.max(0, alerts.length - MAX_ALERTS));
    return fresh;
  }

  async function loadAlerts() {
    let after = 0;
    for (;;) {
      const body = await call(`alerts?after=${after}&limit=100`);
      take(body);
      after = body.next_after;
      if (!body.more) return;
    }
  }

  /** "2 new listings match “garden bench”" for the alerts an event brought, per saved search. */
  function announce(fresh) {
    const per = new Map();
    for (const a of fresh) per.set(a.saved_search, (per.get(a.saved_search) ?? 0) + 1);
    announcer.textContent = [...per].map(([label, n]) => `${n} new ${n === 1 ? "listing matches" : "listings match"} ${label}`)
      .join(". ");
  }

  /** The stream of new alerts, opened with the session cookie; reopened (with a fresh cookie) when it drops. */
  async function listen() {
    if (!sessionToken || source || typeof EventSource === "undefined") return;
    try {
      await call("alerts/session", { method: "POST" });
    } catch (e) {
      setTimeout(listen, RECONNECT_MS);
      return;
    }
    const last = alerts.length ? alerts[alerts.length - 1].id : 0;
    source = new EventSource(`v1/alerts/stream?after=${last}`);
    source.addEventListener("open", () => { link.dataset.live = "true"; });
    source.addEventListener("alerts", (e) => {
      const fresh = take(JSON.parse(e.data));
      if (!fresh.length) return;
      announce(fresh);
      if (savedShown()) { showLists(); markSeen(); } else showCount();
    });
    source.addEventListener("error", () => {
      delete link.dataset.live;
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      source = null;
      setTimeout(listen, RECONNECT_MS); // refused (the cookie ran out): a new session, then again
    });
  }

  function savedShown() {
    return savedView !== null && !savedView.hidden;
  }

  function listingPrice(listing) {
    return typeof formatPrice === "function" ? formatPrice(listing.price) : String(listing.price ?? "");
  }

  function alertItem(a) {
    const item = make("li", { class: "alert-item" });
    if (a.listing) {
      const photo = a.listing.photos?.[0]?.url;
      if (photo) item.append(make("img", { src: photo.replace(/^\//, ""), alt: "", width: "64", height: "64" }));
      const open = make("a", { href: `listing/${encodeURIComponent(a.listing_id)}`, "data-listing-id": a.listing_id,
        class: "alert-link", text: a.listing.title });
      item.append(make("div", { class: "alert-body" }, open,
        make("span", { class: "alert-meta", text: `${listingPrice(a.listing)} · ${a.listing.location}` }),
        make("span", { class: "alert-for", text: `New for ${a.saved_search}` })));
    } else {
      item.append(make("div", { class: "alert-body" }, make("span", { text: "No longer listed" }),
        make("span", { class: "alert-for", text: `New for ${a.saved_search}` })));
    }
    if (a.id > seenId()) item.classList.add("unseen");
    return item;
  }

  function searchItem(s) {
    const n = alerts.filter((a) => a.saved_search_id === s.id).length;
    const remove = make("button", { type: "button", class: "unsave delete-search", "data-search-id": String(s.id),
      "aria-label": `Delete saved search ${s.label}`, text: "Delete" });
    return make("li", { class: "saved-search", "data-search-id": String(s.id) },
      make("span", { class: "saved-search-label", text: s.label }),
      make("span", { class: "saved-search-count", text: n === 1 ? "1 new listing" : `${n} new listings` }), remove);
  }

  function showLists() {
    searchesEmpty.hidden = searches.length > 0;
    searchesList.replaceChildren(...searches.map(searchItem));
    alertsEmpty.hidden = alerts.length > 0;
    alertsList.replaceChildren(...[...alerts].reverse().map(alertItem));
  }

  // Bumped by each load and each delete: a load answered after a newer load or a delete is stale (it
  // would bring a just-deleted search back) and is dropped.
  let listsVersion = 0;

  async function showSavedSearches() {
    const mine = ++listsVersion;
    if (!sessionToken) {
      searches = [];
      showLists();
      return;
    }
    searchesStatus.textContent = "Loading your saved searches…";
    try {
      const [body] = await Promise.all([call("saved-searches"), loadAlerts()]);
      if (mine !== listsVersion) return;
      searches = body.saved_searches;
      searchesStatus.textContent = "";
    } catch (e) {
      if (mine !== listsVersion) return;
      searchesStatus.textContent = `Could not load your saved searches: ${e.message}`;
    }
    showLists();
    markSeen();
    if (location.hash === "#alerts-heading") document.getElementById("alerts-heading").focus();
  }

  async function deleteSearch(id) {
    const at = searches.findIndex((s) => s.id === id);
    if (at < 0) return;
    const { label } = searches[at];
    try {
      await call(`saved-searches/${id}`, { method: "DELETE" });
    } catch (e) {
      searchesStatus.textContent = `Not deleted: ${e.message}`;
      return;
    }
    listsVersion++; // a load still on its way was answered before this delete
    searches.splice(at, 1);
    for (let i = alerts.length - 1; i >= 0; i--) if (alerts[i].saved_search_id === id) alerts.splice(i, 1);
    if (keyOf(shownSearch()) === savedKey) savedKey = null;
    showLists();
    showCount();
    searchesStatus.textContent = `Deleted the saved search ${label}.`;
    const left = searchesList.querySelectorAll("button.delete-search");
    (left[Math.min(at, left.length - 1)] ?? document.getElementById("saved-searches-heading")).focus();
  }

  /* ---------- wiring ---------- */

  function opensHere(e) {
    return e.button === 0 && !e.ctrlKey && !e.metaKey && !e.shiftKey && !e.altKey;
  }

  saveButton.addEventListener("click", saveSearch);
  searchesList.addEventListener("click", (e) => {
    const remove = e.target.closest("button.delete-search");
    if (remove) deleteSearch(Number(remove.dataset.searchId));
  });
  alertsList.addEventListener("click", (e) => {
    const open = e.target.closest("a.alert-link");
    if (!open || !opensHere(e) || typeof goToListing !== "function") return;
    e.preventDefault();
    goToListing(open.dataset.listingId);
  });
  link.addEventListener("click", (e) => {
    if (!opensHere(e) || typeof goToSaved !== "function") return;
    e.preventDefault();
    history.pushState(null, "", "saved#alerts-heading");
    showRoute();
  });
  // The results summary changes with every answer: the button follows the search on screen.
  const summary = document.getElementById("results-summary");
  if (summary) new MutationObserver(syncSaveButton).observe(summary, { childList: true, characterData: true, subtree: true });
  if (savedView) {
    new MutationObserver(() => { if (savedShown()) showSavedSearches(); })
      .observe(savedView, { attributes: true, attributeFilter: ["hidden"] });
  }

  showCount();
  if (sessionToken) {
    loadAlerts().then(showCount, () => {}).finally(listen);
  }
})();
