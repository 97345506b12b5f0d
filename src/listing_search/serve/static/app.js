/* Listing search page: vanilla JS over the JSON API of the same server. No build step. */
"use strict";

const API = "v1"; // relative, so the page also works behind a path prefix
const PAGE_K = 24;
const ROW_K = 12;
const HISTORY_KEY = "listing-search.history";
const HISTORY_MAX = 50;

const $ = (id) => document.getElementById(id);
const els = {
  form: $("search-form"), q: $("q"), button: $("search-button"),
  photo: $("photo"), dropzone: $("dropzone"), preview: $("photo-preview"),
  previewImg: $("photo-preview-img"), photoName: $("photo-name"), photoClear: $("photo-clear"),
  filtersBox: $("filters-box"), filtersCount: $("filters-count"), category: $("category"), priceMin: $("price-min"), priceMax: $("price-max"), location: $("location"),
  status: $("status"), error: $("error"),
  results: $("results"), resultsList: $("results-list"), resultsSummary: $("results-summary"),
  didYouMean: $("did-you-mean"), searchedWords: $("searched-words"), typedWords: $("typed-words"),
  searchInstead: $("search-instead"), photoGuess: $("photo-guess"), photoGuessChip: $("photo-guess-chip"),
  noMatch: $("no-match"),
  forYou: $("for-you"), forYouList: $("for-you-list"),
  dialog: $("listing-dialog"), dialogClose: $("dialog-close"),
  title: $("listing-title"), price: $("listing-price"), location2: $("listing-location"),
  category2: $("listing-category"), like: $("like"), photos: $("listing-photos"), description: $("listing-description"),
  listingError: $("listing-error"), similarList: $("similar-list"), similarStatus: $("similar-status"),
  cardTemplate: $("card-template"),
};

let chosenPhoto = null; // the File searched with, from the picker, a drop or a paste
let searchSeq = 0; // answers to older searches are ignored
let openSeq = 0;
let lastTyped = ""; // the words as typed for the last search, offered back when the API corrected them
let guessedCategory = null; // what the last photo looks like, offered as a category filter

/* ---------- API ---------- */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** The reason a failed answer gives: FastAPI's {detail}, a list of validation errors, or {error|reason|message}. */
function reasonOf(body, status) {
  if (body && typeof body === "object") {
    const d = body.detail ?? body.reason ?? body.error ?? body.message;
    if (typeof d === "string") return d;
    if (Array.isArray(d) && d.length) {
      return d.map((e) => (typeof e === "string" ? e : [fieldOf(e), e.msg].filter(Boolean).join(": "))).join("; ");
    }
    if (d && typeof d === "object") return d.reason ?? d.message ?? JSON.stringify(d);
  }
  return `The server answered ${status}.`;
}

function fieldOf(err) {
  return Array.isArray(err.loc) ? err.loc.filter((p) => p !== "body" && p !== "query").join(".") : "";
}

async function api(path, options = {}) {
  let resp;
  try {
    resp = await fetch(`${API}/${path}`, { headers: { Accept: "application/json" }, ...options });
  } catch (e) {
    throw new ApiError(0, "Could not reach the server. Check your connection and try again.");
  }
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) throw new ApiError(resp.status, reasonOf(body, resp.status));
  return body;
}

/* ---------- listings as the API returns them ---------- */

/** One listing in the shape the page uses, whatever the exact field names of the API. */
function normalise(raw) {
  const id = raw.id ?? raw.listing_id;
  return {
    id: String(id),
    title: raw.title ?? raw.product_name ?? "Untitled",
    price: raw.price,
    location: raw.location ?? "",
    category: raw.category ?? raw.root_category ?? "",
    categoryPath: raw.category_path ?? "",
    description: raw.description ?? "",
    match: typeof raw.match === "string" && raw.match ? raw.match : null, // "great match"... or null (uncalibrated)
    photos: photosOf(raw),
  };
}

function photosOf(raw) {
  const urlFor = (imageId) => `${API}/images/${encodeURIComponent(imageId)}`;
  if (Array.isArray(raw.photos)) {
    return raw.photos.map((p) => (typeof p === "string" ? { id: p, url: urlFor(p) }
      : { id: p.image_id ?? p.id, url: p.url ?? urlFor(p.image_id ?? p.id) }));
  }
  const ids = raw.photo_ids ?? raw.image_ids ?? [];
  const urls = raw.photo_urls ?? raw.image_urls ?? [];
  return ids.map((pid, i) => ({ id: pid, url: urls[i] ?? urlFor(pid) }));
}

function resultsOf(body) {
  const items = Array.isArray(body) ? body : (body?.results ?? body?.items ?? body?.listings ?? []);
  return items.map(normalise);
}

const priceFormat = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP", maximumFractionDigits: 2 });
function formatPrice(p) {
  if (p === null || p === undefined || p === "" || Number.isNaN(Number(p))) return "Price not given";
  const n = Number(p);
  return n === 0 ? "Free" : priceFormat.format(n).replace(/\.00$/, "");
}

/** A photo URL from the API is absolute ("/v1/images/x") or relative; make it work under a prefix too. */
function photoUrl(url) {
  return url.startsWith("/") ? url.slice(1) : url;
}

/* ---------- cards ---------- */

function card(listing) {
  const node = els.cardTemplate.content.firstElementChild.cloneNode(true);
  const art = node.querySelector("article");
  art.dataset.listingId = listing.id;
  if (listing.price !== null && listing.price !== undefined) art.dataset.price = String(listing.price);
  const img = node.querySelector("img");
  if (listing.photos.length) {
    img.src = photoUrl(listing.photos[0].url);
  } else {
    img.remove();
  }
  const link = node.querySelector(".card-link");
  link.textContent = listing.title;
  link.href = `#listing=${encodeURIComponent(listing.id)}`;
  node.querySelector(".price").textContent = formatPrice(listing.price);
  node.querySelector(".location").textContent = listing.location;
  node.querySelector(".category").textContent = listing.category;
  const match = node.querySelector(".match");
  if (listing.match) {
    match.textContent = listing.match;
    match.dataset.match = listing.match.replace(/\s+/g, "-");
  } else {
    match.remove(); // uncalibrated ranker: its raw scores mean nothing to a reader
  }
  return node;
}

function fill(list, listings) {
  list.replaceChildren(...listings.map(card));
}

/** One handler for every card list: a click anywhere on a card, or Enter on its link, opens the listing.
 * Ctrl/Cmd/Shift-click is left to the browser: the link's address (#listing=ID) opens it in a new tab. */
function wireCardList(list) {
  list.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const art = e.target.closest("article[data-listing-id]");
    if (!art) return;
    e.preventDefault();
    openListing(art.dataset.listingId);
  });
}

function listingInUrl() {
  const m = /^#listing=(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function setListingInUrl(id) {
  const base = location.pathname + location.search;
  history.replaceState(null, "", id ? `${base}#listing=${encodeURIComponent(id)}` : base);
}

/* ---------- status and errors ---------- */

function setStatus(text, loading = false) {
  els.status.textContent = text;
  els.status.classList.toggle("loading", loading);
}

function showError(message) {
  els.error.textContent = message;
  els.error.hidden = !message;
}

/* ---------- the photo picker: choose, drop, paste ---------- */

function setPhoto(file) {
  if (els.previewImg.src.startsWith("blob:")) URL.revokeObjectURL(els.previewImg.src);
  chosenPhoto = file;
  els.preview.hidden = !file;
  els.dropzone.dataset.state = file ? "chosen" : "empty";
  if (file) {
    els.previewImg.src = URL.createObjectURL(file);
    els.photoName.textContent = file.name || "Pasted photo";
  } else {
    els.previewImg.removeAttribute("src");
    els.photo.value = "";
  }
}

function firstImage(files) {
  return Array.from(files || []).find((f) => f.type.startsWith("image/") || f.type === "") ?? null;
}

function wirePhotoPicker() {
  els.photo.addEventListener("change", () => {
    const file = els.photo.files[0] ?? null;
    setPhoto(file);
    if (file) search();
  });
  // A file the browser cannot show (not a photo) keeps its name but loses the broken thumbnail.
  els.previewImg.addEventListener("error", () => { els.previewImg.hidden = true; });
  els.previewImg.addEventListener("load", () => { els.previewImg.hidden = false; });
  els.photoClear.addEventListener("click", () => {
    setPhoto(null);
    els.photo.focus();
    search(); // the words alone, or back to the empty page: photo results must not stay on screen
  });
  for (const type of ["dragenter", "dragover"]) {
    els.dropzone.addEventListener(type, (e) => { e.preventDefault(); els.dropzone.dataset.state = "over"; });
  }
  els.dropzone.addEventListener("dragleave", () => { els.dropzone.dataset.state = chosenPhoto ? "chosen" : "empty"; });
  // A photo dropped anywhere on the page is taken (rather than the browser leaving the page to show it).
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = firstImage(e.dataTransfer?.files);
    els.dropzone.dataset.state = chosenPhoto ? "chosen" : "empty";
    if (file) { setPhoto(file); search(); }
  });
  document.addEventListener("paste", (e) => {
    const file = firstImage(e.clipboardData?.files);
    if (file) { e.preventDefault(); setPhoto(file); search(); }
  });
}

/* ---------- search ---------- */

function searchForm({ spelling = true } = {}) {
  const fd = new FormData();
  const text = els.q.value.trim();
  if (text) fd.append("text", text);
  if (chosenPhoto) fd.append("image", chosenPhoto, chosenPhoto.name || "photo");
  fd.append("k", String(PAGE_K));
  if (!spelling) fd.append("spelling", "false");
  if (els.category.value) fd.append("category", els.category.value);
  if (els.priceMin.value !== "") fd.append("price_min", els.priceMin.value);
  if (els.priceMax.value !== "") fd.append("price_max", els.priceMax.value);
  if (els.location.value.trim()) fd.append("location", els.location.value.trim());
  const history = readHistory();
  if (history.length) fd.append("history", JSON.stringify(history)); // leans results towards it
  return fd;
}

function hasQuery() {
  return Boolean(els.q.value.trim() || chosenPhoto);
}

/** What a search looks for, in words: "“oak table” and your photo, in Home & Garden, £10 to £50, near Leeds". */
function describeSearch({ words, photo, filters }) {
  const what = [words ? `“${words}”` : "", photo ? "your photo" : ""].filter(Boolean).join(" and ");
  const parts = [what];
  if (filters.category) parts.push(`in ${filters.category}`);
  const min = filters.price_min, max = filters.price_max;
  if (min != null && max != null) parts.push(`${formatPrice(min)} to ${formatPrice(max)}`);
  else if (min != null) parts.push(`from ${formatPrice(min)}`);
  else if (max != null) parts.push(`up to ${formatPrice(max)}`);
  if (filters.location) parts.push(`near ${filters.location}`);
  return parts.filter(Boolean).join(", ");
}

/** The search as the form states it now, before the API answers. */
function searchOfForm() {
  const filters = {};
  if (els.category.value) filters.category = els.category.value;
  if (els.priceMin.value !== "") filters.price_min = Number(els.priceMin.value);
  if (els.priceMax.value !== "") filters.price_max = Number(els.priceMax.value);
  if (els.location.value.trim()) filters.location = els.location.value.trim();
  return { words: els.q.value.trim(), photo: Boolean(chosenPhoto), filters };
}

/** Notes above the results (did you mean, photo guess, no good match) belong to one answer only. */
function hideNotes() {
  els.didYouMean.hidden = true;
  els.photoGuess.hidden = true;
  els.noMatch.hidden = true;
  els.resultsList.classList.remove("weak");
  guessedCategory = null;
}

/** No results on screen: the old ones would sit under a header that no longer describes them. */
function clearResults(summary) {
  hideNotes();
  els.resultsList.replaceChildren();
  els.resultsSummary.textContent = summary;
}

function showAnswer(body, asked) {
  const listings = resultsOf(body);
  const searched = { ...asked, words: body?.searched ?? asked.words, filters: body?.filters ?? asked.filters };
  const what = describeSearch(searched);
  if (!listings.length) {
    clearResults(`No listings for ${what}. Try fewer words or wider filters.`);
    return;
  }
  fill(els.resultsList, listings);
  els.resultsSummary.textContent =
    `${listings.length} listing${listings.length === 1 ? "" : "s"} for ${what}, best match first.`;
  showNotes(body);
}

function showNotes(body) {
  hideNotes();
  const corrections = Array.isArray(body?.corrections) ? body.corrections : [];
  if (corrections.length && body.searched) {
    els.searchedWords.textContent = body.searched;
    els.typedWords.textContent = lastTyped;
    els.didYouMean.hidden = false;
  }
  const guess = Array.isArray(body?.predicted_categories) ? body.predicted_categories[0] : null;
  if (guess?.category && guess.category !== els.category.value) {
    guessedCategory = guess.category;
    const pct = Math.round(Number(guess.probability) * 100);
    els.photoGuessChip.textContent = `Looks like: ${guess.category}` + (Number.isFinite(pct) ? ` (${pct}%)` : "");
    els.photoGuess.hidden = false;
  }
  if (body?.no_match) {
    els.noMatch.hidden = false;
    els.resultsList.classList.add("weak");
  }
}

async function search({ spelling = true } = {}) {
  showError("");
  if (!hasQuery()) {
    searchSeq++; // an answer still on its way is no longer wanted
    setStatus("");
    els.results.setAttribute("aria-busy", "false");
    els.button.disabled = false;
    clearResults("Type what you are looking for, or add a photo.");
    return;
  }
  const seq = ++searchSeq;
  const asked = searchOfForm();
  lastTyped = asked.words;
  setStatus(`Searching for ${describeSearch(asked)}…`, true);
  els.results.setAttribute("aria-busy", "true");
  els.button.disabled = true;
  saveStateToUrl();
  syncFilters();
  try {
    const body = await api("search", { method: "POST", body: searchForm({ spelling }) });
    if (seq !== searchSeq) return;
    showAnswer(body, asked);
    setStatus("");
  } catch (e) {
    if (seq !== searchSeq) return;
    setStatus("");
    clearResults(`The search for ${describeSearch(asked)} failed.`);
    showError(e.message);
  } finally {
    if (seq === searchSeq) {
      els.results.setAttribute("aria-busy", "false");
      els.button.disabled = false;
    }
  }
}

function wireSearchNotes() {
  // Both buttons hide once used: focus moves to the results heading rather than being lost.
  els.searchInstead.addEventListener("click", () => {
    els.q.value = lastTyped;
    $("results-heading").focus();
    search({ spelling: false });
  });
  els.photoGuessChip.addEventListener("click", () => {
    const category = guessedCategory;
    if (!category) return;
    if (![...els.category.options].some((o) => o.value === category)) els.category.add(new Option(category, category));
    els.category.value = category;
    $("results-heading").focus();
    search();
  });
}

/* The text query and filters live in the address, so a search can be bookmarked or shared. */
const URL_FIELDS = { q: "q", category: "category", price_min: "priceMin", price_max: "priceMax", location: "location" };

function saveStateToUrl() {
  const params = new URLSearchParams();
  for (const [key, el] of Object.entries(URL_FIELDS)) {
    const v = els[el].value.trim();
    if (v) params.set(key, v);
  }
  const qs = params.toString();
  history.replaceState(null, "", (qs ? `?${qs}` : location.pathname) + location.hash);
}

function loadStateFromUrl() {
  const params = new URLSearchParams(location.search);
  for (const [key, el] of Object.entries(URL_FIELDS)) {
    if (params.has(key)) els[el].value = params.get(key);
  }
}

/** Filters start open on wide screens, or whenever one is set; folded on phones to keep results in view. */
function syncFilters(initial = false) {
  const active = [els.category, els.priceMin, els.priceMax, els.location].filter((el) => el.value.trim()).length;
  els.filtersCount.textContent = active ? `(${active} on)` : "";
  if (initial && (active || window.matchMedia("(min-width: 561px)").matches)) els.filtersBox.open = true;
}

/* ---------- categories ---------- */

async function loadCategories() {
  try {
    const body = await api("categories");
    const names = Array.isArray(body) ? body : (body?.categories ?? []);
    const wanted = new URLSearchParams(location.search).get("category") ?? els.category.value;
    for (const c of names) {
      const name = typeof c === "string" ? c : (c.name ?? c.root_category);
      const opt = new Option(name, name);
      els.category.add(opt);
    }
    if (wanted) els.category.value = wanted;
    syncFilters(true);
  } catch (e) {
    // Without the list the filter still works as "All categories"; searching is unaffected.
    console.warn("categories unavailable:", e.message);
  }
}

/* ---------- one listing, its photos, and more like it ---------- */

async function openListing(id) {
  const seq = ++openSeq;
  els.title.textContent = "Loading…";
  for (const el of [els.price, els.location2, els.category2, els.description]) el.textContent = "";
  els.photos.replaceChildren();
  els.similarList.replaceChildren();
  els.similarStatus.textContent = "";
  els.listingError.hidden = true;
  els.like.hidden = true;
  if (!els.dialog.open) els.dialog.showModal();
  els.dialogClose.focus();
  const [detail, similar] = await Promise.allSettled([
    api(`listings/${encodeURIComponent(id)}`),
    api(`listings/${encodeURIComponent(id)}/similar?k=${ROW_K}`),
  ]);
  if (seq !== openSeq) return;
  if (detail.status === "fulfilled") {
    showDetail(normalise(detail.value));
    setListingInUrl(id);
    remember(id);
  } else {
    els.title.textContent = "Listing unavailable";
    els.listingError.textContent = detail.reason.message;
    els.listingError.hidden = false;
  }
  if (similar.status === "fulfilled") {
    const listings = resultsOf(similar.value).filter((l) => l.id !== String(id));
    fill(els.similarList, listings);
    els.similarStatus.textContent = listings.length ? "" : "Nothing similar found.";
  } else {
    els.similarStatus.textContent = `Could not load similar listings: ${similar.reason.message}`;
  }
}

function showDetail(listing) {
  els.dialog.dataset.listingId = listing.id;
  els.title.textContent = listing.title;
  els.price.textContent = formatPrice(listing.price);
  els.location2.textContent = listing.location;
  els.category2.textContent = listing.categoryPath || listing.category;
  els.description.textContent = listing.description;
  els.like.hidden = false;
  els.like.setAttribute("aria-pressed", String(isLiked(listing.id)));
  els.photos.replaceChildren(...listing.photos.map((p, i) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = photoUrl(p.url);
    img.alt = `${listing.title}, photo ${i + 1} of ${listing.photos.length}`;
    img.loading = "lazy";
    li.append(img);
    return li;
  }));
}

function wireDialog() {
  els.dialogClose.addEventListener("click", () => els.dialog.close());
  els.like.addEventListener("click", () => {
    const id = els.dialog.dataset.listingId;
    if (!id) return;
    const liked = !isLiked(id);
    setLiked(id, liked);
    els.like.setAttribute("aria-pressed", String(liked));
  });
  // A click on the backdrop (outside the dialog's box) closes it; Esc closes it natively.
  els.dialog.addEventListener("click", (e) => { if (e.target === els.dialog) els.dialog.close(); });
  els.dialog.addEventListener("close", () => {
    openSeq++;
    delete els.dialog.dataset.listingId;
    setListingInUrl(null);
    loadForYou();
  });
}

/* ---------- history and "for you" ---------- */

function readHistory() {
  try {
    const h = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    return Array.isArray(h) ? h : [];
  } catch (e) {
    return [];
  }
}

function writeHistory(h) {
  h.splice(0, Math.max(0, h.length - HISTORY_MAX));
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h)); } catch (e) { /* storage full or off */ }
}

/** An event in the shape of rank.personalise.HistoryEvent: the timestamp is in seconds since the epoch. */
function historyEvent(listingId, event) {
  return { listing_id: String(listingId), event, timestamp: Math.round(Date.now() / 1000) };
}

function remember(listingId) {
  const h = readHistory();
  const last = h[h.length - 1];
  if (last && last.listing_id === String(listingId) && last.event === "viewed") h.pop(); // reopened: keep the latest
  h.push(historyEvent(listingId, "viewed"));
  writeHistory(h);
}

function isLiked(listingId) {
  return readHistory().some((e) => e.listing_id === String(listingId) && e.event === "liked");
}

function setLiked(listingId, liked) {
  const h = readHistory().filter((e) => !(e.listing_id === String(listingId) && e.event === "liked"));
  if (liked) h.push(historyEvent(listingId, "liked"));
  writeHistory(h);
}

/** The "for you" row shows only when there is history and the recommend endpoint answers. */
async function loadForYou() {
  const history = readHistory();
  if (!history.length) { els.forYou.hidden = true; return; }
  try {
    const body = await api("recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ history, k: ROW_K }),
    });
    const listings = resultsOf(body);
    fill(els.forYouList, listings);
    els.forYou.hidden = listings.length === 0;
  } catch (e) {
    els.forYou.hidden = true;
  }
}

/* ---------- start ---------- */

function init() {
  wireCardList(els.resultsList);
  wireCardList(els.similarList);
  wireCardList(els.forYouList);
  wirePhotoPicker();
  wireDialog();
  wireSearchNotes();
  window.addEventListener("hashchange", () => { const id = listingInUrl(); if (id) openListing(id); });
  els.form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  els.category.addEventListener("change", () => { if (hasQuery()) search(); });
  loadStateFromUrl();
  syncFilters(true);
  document.body.dataset.ready = "false";
  Promise.allSettled([loadCategories(), loadForYou()]).then(() => {
    document.body.dataset.ready = "true";
    if (hasQuery()) search();
    const shared = listingInUrl();
    if (shared) openListing(shared);
  });
}

init();
