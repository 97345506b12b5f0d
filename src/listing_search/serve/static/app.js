/* Listing search page: vanilla JS over the JSON API of the same server. No build step. */
"use strict";

const API = "v1"; // relative, so the page also works behind a path prefix
const PAGE_K = 24;
const ROW_K = 12;
const HISTORY_KEY = "listing-search.history";
const HISTORY_MAX = 50;
const PERSONALISE_KEY = "listing-search.personalise"; // "off" once the user turned personalisation off
const PAGE_TITLE = document.title;

/* Every relative address (the API, photos, links, the history's entries) resolves from the site's root,
 * also on a listing's own page (listing/ID) and under a path prefix: the server gives that page
 * <base href="../">, and the search page gets the same root here, before any address changes. */
const ROOT = new URL(".", document.baseURI);
(document.querySelector("base") ?? document.head.insertBefore(document.createElement("base"),
  document.head.firstChild)).href = ROOT.href;

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
  noMatch: $("no-match"), sort: $("sort"), more: $("more"), moreCount: $("more-count"), loadMore: $("load-more"),
  forYou: $("for-you"), forYouList: $("for-you-list"), forYouNote: $("for-you-note"),
  historyBox: $("history-box"), historySummary: $("history-summary"), personalise: $("personalise"),
  historyNote: $("history-note"), historyList: $("history-list"), historyClear: $("history-clear"),
  skip: document.querySelector(".skip"), searchView: $("search-view"), listingView: $("listing-view"),
  backLink: $("back-link"), backText: $("back-text"), listingDetail: $("listing-detail"),
  title: $("listing-title"), price: $("listing-price"), location2: $("listing-location"),
  category2: $("listing-category"), like: $("like"), photos: $("listing-photos"), description: $("listing-description"),
  listingError: $("listing-error"), similar: $("similar"), similarList: $("similar-list"),
  similarStatus: $("similar-status"), cardTemplate: $("card-template"),
};

let chosenPhoto = null; // the File searched with, from the picker, a drop or a paste
let searchSeq = 0; // answers to older searches are ignored
let openSeq = 0;
let lastTyped = ""; // the words as typed for the last search, offered back when the API corrected them
let guessedCategory = null; // what the last photo looks like, offered as a category filter
let current = null; // the search on screen: {asked, searched, nextCursor, shown: Set of ids, total, loading}
let sortIsBrowseDefault = false; // "Newest" was put in the sort box because there was nothing to be relevant to
let searchScroll = 0; // where the results were scrolled to when a listing was opened
let openedFrom = null; // the link (a card's, a history entry's) that opened a listing: focus goes back to it

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
    because: raw.because?.title ? raw.because : null, // recommendations: the history listing it is most like
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
/** A price bound in words: £0 is a bound, not "Free". */
function formatMoney(p) {
  return priceFormat.format(Number(p)).replace(/\.00$/, "");
}

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
  link.href = listingHref(listing.id);
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
  if (listing.because) {
    const because = node.querySelector(".because");
    because.textContent = `Because you ${EVENT_PAST[listing.because.event] ?? "viewed"} “${listing.because.title}”`;
    because.hidden = false;
  }
  return node;
}

const EVENT_PAST = { viewed: "viewed", liked: "saved", searched: "searched for" };

function fill(list, listings) {
  list.replaceChildren(...listings.map(card));
}

/** One handler for every card list: a click anywhere on a card, or Enter on its link, opens the listing.
 * Ctrl/Cmd/Shift-click is left to the browser: the link's address (listing/ID) opens it in a new tab. */
function wireCardList(list) {
  list.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const art = e.target.closest("article[data-listing-id]");
    if (!art) return;
    e.preventDefault();
    goToListing(art.dataset.listingId);
  });
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

const PROMPT = "Type what you are looking for, add a photo, or choose a filter.";
const ORDER = { relevance: "best match first", newest: "newest first", price_asc: "lowest price first",
  price_desc: "highest price first" };

/** The search as the form states it now; later pages of it are asked with this same snapshot. */
function searchOfForm({ spelling = true } = {}) {
  const filters = {};
  if (els.category.value) filters.category = els.category.value;
  if (els.priceMin.value !== "") filters.price_min = Number(els.priceMin.value);
  if (els.priceMax.value !== "") filters.price_max = Number(els.priceMax.value);
  if (els.location.value.trim()) filters.location = els.location.value.trim();
  return { words: els.q.value.trim(), photo: chosenPhoto, filters, sort: els.sort.value || "relevance", spelling };
}

/** One page of a search as the API's form fields: the first, or the one after ``cursor`` (the API's
 * ``next_cursor``: a listing added meanwhile neither shifts nor repeats what follows). */
function searchForm(asked, cursor = null) {
  const fd = new FormData();
  if (asked.words) fd.append("text", asked.words);
  if (asked.photo) fd.append("image", asked.photo, asked.photo.name || "photo");
  fd.append("k", String(PAGE_K));
  if (!asked.spelling) fd.append("spelling", "false");
  for (const [name, value] of Object.entries(asked.filters)) fd.append(name, String(value));
  fd.append("sort", asked.sort);
  if (cursor) fd.append("cursor", cursor);
  const history = historyToSend();
  if (history.length) fd.append("history", JSON.stringify(history)); // leans results towards it
  return fd;
}

/** Words, a photo or a filter: anything to search or browse by. */
function hasQuery() {
  const filtered = [els.category, els.priceMin, els.priceMax, els.location].some((el) => el.value.trim());
  return Boolean(els.q.value.trim() || chosenPhoto || filtered);
}

/** Filters alone: the API lists the listings that pass them, and counts them. */
function isBrowse(s) {
  return !s.words && !s.photo;
}

/** What a search looks for, in words: "“oak table” and your photo, in Home & Garden, £10 to £50, near Leeds". */
function describeSearch({ words, photo, filters }) {
  const what = [words ? `“${words}”` : "", photo ? "your photo" : ""].filter(Boolean).join(" and ");
  const parts = [what];
  if (filters.category) parts.push(`in ${filters.category}`);
  const min = filters.price_min, max = filters.price_max;
  if (min != null && max != null) parts.push(`${formatMoney(min)} to ${formatMoney(max)}`);
  else if (min != null) parts.push(`from ${formatMoney(min)}`);
  else if (max != null) parts.push(`up to ${formatMoney(max)}`);
  if (filters.location) parts.push(`near ${filters.location}`);
  return parts.filter(Boolean).join(", ");
}

/** "for “oak table”, in Home & Garden" for a query; "in Home & Garden" when browsing. */
function subjectOf(s) {
  return isBrowse(s) ? describeSearch(s) : `for ${describeSearch(s)}`;
}

/** Browsing "by relevance" has nothing to be relevant to: the API lists newest first. */
function orderOf(s) {
  return isBrowse(s) && s.sort === "relevance" ? ORDER.newest : (ORDER[s.sort] ?? ORDER.relevance);
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
  els.more.hidden = true;
}

function showAnswer(body, asked) {
  const listings = resultsOf(body);
  const searched = { ...asked, words: body?.searched ?? asked.words, filters: body?.filters ?? asked.filters };
  current.searched = searched;
  current.total = Number.isInteger(body?.total) ? body.total : null;
  current.nextCursor = body?.next_cursor ?? null;
  if (!listings.length) {
    clearResults(isBrowse(searched) ? `No listings ${describeSearch(searched)}. Try wider filters.`
      : `No listings for ${describeSearch(searched)}. Try fewer words or wider filters.`);
    if (body?.no_match) els.noMatch.hidden = false; // nothing matched: say so, show nothing weak
    return;
  }
  for (const l of listings) current.shown.add(l.id);
  fill(els.resultsList, listings);
  showSummary();
  showMore();
  showNotes(body);
}

/** "312 listings in Home & Garden, up to £50, newest first.": the total when the API counts, else those shown. */
function showSummary() {
  const n = current.total ?? current.shown.size;
  els.resultsSummary.textContent =
    `${n} listing${n === 1 ? "" : "s"} ${subjectOf(current.searched)}, ${orderOf(current.searched)}.`;
}

/** "Load more" stays while the API says where a next page starts. */
function showMore() {
  const done = !current.nextCursor;
  els.more.hidden = done;
  els.moreCount.textContent = current.total !== null ? `Showing ${current.shown.size} of ${current.total}.`
    : `Showing ${current.shown.size}.`;
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

function setBusy(busy) {
  els.results.setAttribute("aria-busy", String(busy));
  els.button.disabled = busy;
  els.loadMore.disabled = busy;
}

async function search({ spelling = true } = {}) {
  showError("");
  const seq = ++searchSeq; // answers to an older search (or its later pages) are no longer wanted
  syncSort();
  saveStateToUrl();
  syncFilters();
  if (!hasQuery()) {
    current = null;
    setStatus("");
    setBusy(false);
    clearResults(PROMPT);
    return;
  }
  const asked = searchOfForm({ spelling });
  current = { asked, searched: asked, nextCursor: null, shown: new Set(), total: null, loading: false };
  lastTyped = asked.words;
  setStatus(isBrowse(asked) ? `Looking for listings ${describeSearch(asked)}…`
    : `Searching for ${describeSearch(asked)}…`, true);
  els.more.hidden = true;
  setBusy(true);
  try {
    const body = await api("search", { method: "POST", body: searchForm(asked) });
    if (seq !== searchSeq) return;
    showAnswer(body, asked);
    setStatus("");
  } catch (e) {
    if (seq !== searchSeq) return;
    setStatus("");
    clearResults(`The search ${subjectOf(asked)} failed.`);
    showError(e.message);
  } finally {
    if (seq === searchSeq) setBusy(false);
  }
}

/** The next page of the search on screen, appended; a listing already shown is not shown twice. */
async function loadMore() {
  const page = current;
  const seq = searchSeq;
  if (!page || page.loading) return;
  page.loading = true;
  showError("");
  setStatus("Loading more listings…", true);
  setBusy(true);
  try {
    const body = await api("search", { method: "POST", body: searchForm(page.asked, page.nextCursor) });
    if (seq !== searchSeq) return;
    const listings = resultsOf(body);
    page.nextCursor = body?.next_cursor ?? null;
    if (Number.isInteger(body?.total)) page.total = body.total;
    const fresh = listings.filter((l) => !page.shown.has(l.id));
    for (const l of fresh) page.shown.add(l.id);
    els.resultsList.append(...fresh.map(card));
    showSummary();
    showMore();
    setStatus("");
    // The button went with the last page: focus the first new card rather than losing it.
    if (els.more.hidden && fresh.length) {
      els.resultsList.querySelector(`article[data-listing-id="${CSS.escape(fresh[0].id)}"] .card-link`)?.focus();
    }
  } catch (e) {
    if (seq !== searchSeq) return;
    setStatus("");
    showError(`Could not load more listings: ${e.message}`); // the listings already shown stay
  } finally {
    page.loading = false;
    if (seq === searchSeq) setBusy(false);
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
    setCategory(category);
    $("results-heading").focus();
    search();
  });
}

/* The words, filters and sort live in the address (the photo cannot), so a search can be bookmarked,
 * shared, reloaded, and gone back to: each new search is a history entry. */
const URL_FIELDS = { q: "q", category: "category", price_min: "priceMin", price_max: "priceMax",
  location: "location", sort: "sort" };

function queryOfForm() {
  const params = new URLSearchParams();
  for (const [key, el] of Object.entries(URL_FIELDS)) {
    const v = els[el].value.trim();
    if (v && !(key === "sort" && (v === "relevance" || sortIsBrowseDefault))) params.set(key, v);
  }
  const qs = params.toString();
  return qs ? `?${qs}` : "";
}

let searchInUrl = location.search; // the search the form and results show, as the address writes it

function saveStateToUrl() {
  const qs = queryOfForm();
  if (qs !== location.search) history.pushState(null, "", qs || ROOT.pathname);
  searchInUrl = qs;
}

/** The form as the address states it; a field the address leaves out is emptied. */
function loadStateFromUrl() {
  const params = new URLSearchParams(location.search);
  searchInUrl = location.search;
  for (const [key, el] of Object.entries(URL_FIELDS)) {
    if (key === "category") setCategory(params.get(key) ?? "");
    else els[el].value = params.get(key) ?? "";
  }
  if (!els.sort.value) els.sort.value = "relevance"; // missing or unknown
  sortIsBrowseDefault = false;
  syncSort();
}

/** Browsing (no words, no photo) has nothing to be relevant to: the API lists the newest first, so the
 * sort box says "Newest" and offers no "Best match". Words or a photo bring "Best match" back, unless
 * the user chose "Newest" themselves. */
function syncSort() {
  const browsing = !els.q.value.trim() && !chosenPhoto;
  const bestMatch = els.sort.querySelector('option[value="relevance"]');
  bestMatch.hidden = bestMatch.disabled = browsing;
  if (browsing && els.sort.value === "relevance") {
    els.sort.value = "newest";
    sortIsBrowseDefault = true;
  } else if (!browsing && sortIsBrowseDefault) {
    if (els.sort.value === "newest") els.sort.value = "relevance";
    sortIsBrowseDefault = false;
  }
}

function setCategory(name) {
  if (name && ![...els.category.options].some((o) => o.value === name)) els.category.add(new Option(name, name));
  els.category.value = name;
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
    const wanted = els.category.value; // from the address, before the list came
    els.category.length = 1; // "All categories"
    for (const c of names) {
      const name = typeof c === "string" ? c : (c.name ?? c.root_category);
      els.category.add(new Option(name, name));
    }
    setCategory(wanted);
    syncFilters(true);
  } catch (e) {
    // Without the list the filter still works as "All categories"; searching is unaffected.
    console.warn("categories unavailable:", e.message);
  }
}

/* ---------- a listing's own page: listing/ID, its photos, and more like it ---------- */

function listingHref(id) {
  return `listing/${encodeURIComponent(id)}`;
}

/** The listing id in the address (listing/ID under the site's root), or null on the search page. */
function listingInUrl() {
  const m = /^listing\/([^/]+)\/?$/.exec(location.pathname.slice(ROOT.pathname.length));
  return m ? decodeOrRaw(m[1]) : null;
}

/** A percent-decoded address part; a malformed escape (e.g. %E0) stays as typed and is then simply
 * not found, instead of stopping the page. */
function decodeOrRaw(part) {
  try { return decodeURIComponent(part); } catch (e) { return part; }
}

/** Open a listing as a new page of the browser's history; Back returns to where it was opened. */
function goToListing(id) {
  const depth = history.state?.listingDepth ?? 0; // listings opened since the search page; 0 if none was seen
  const onListing = !els.listingView.hidden;
  if (!onListing) {
    searchScroll = window.scrollY;
    openedFrom = document.activeElement?.closest("a") ?? null; // a card's or a history entry's link
  }
  // From a listing reached without the search page (a shared link), there are no results to go back to.
  const next = !onListing ? 1 : depth ? depth + 1 : 0;
  history.pushState({ listingDepth: next }, "", listingHref(id));
  showRoute();
}

/** The view the address names: a listing's page, or the search page with the search in the address. */
function showRoute() {
  const id = listingInUrl();
  if (id) showListingView(id);
  else showSearchView();
}

function showListingView(id) {
  els.searchView.hidden = true;
  els.listingView.hidden = false;
  els.skip.href = "#listing-title";
  els.skip.textContent = "Skip to the listing";
  const depth = history.state?.listingDepth ?? 0;
  els.backText.textContent = depth ? "Back to results" : "Search all listings";
  window.scrollTo(0, 0);
  openListing(id);
}

function showSearchView() {
  openSeq++; // a listing still loading is no longer wanted
  const wasListing = !els.listingView.hidden;
  els.listingView.hidden = true;
  els.searchView.hidden = false;
  els.skip.href = "#results-heading";
  els.skip.textContent = "Skip to results";
  document.title = PAGE_TITLE;
  if (location.search !== searchInUrl) {
    loadStateFromUrl();
    search();
  }
  if (!wasListing) return;
  showHistory();
  loadForYou();
  window.scrollTo(0, searchScroll);
  // Focus goes back to the link that opened the listing (a history entry's link is rebuilt by
  // showHistory above: found again by its listing id), else to the results' heading.
  let back = openedFrom?.isConnected ? openedFrom : null;
  const id = openedFrom?.dataset?.listingId;
  if (!back && id) back = els.historyList?.querySelector(`a[data-listing-id="${CSS.escape(id)}"]`) ?? null;
  (back ?? $("results-heading")).focus({ preventScroll: true });
}

async function openListing(id) {
  const seq = ++openSeq;
  els.title.textContent = "Loading…";
  document.title = `Loading… – ${PAGE_TITLE}`;
  for (const el of [els.price, els.location2, els.category2, els.description]) el.textContent = "";
  els.photos.replaceChildren();
  els.similarList.replaceChildren();
  els.similarStatus.textContent = "";
  els.listingDetail.hidden = false;
  els.similar.hidden = false;
  els.listingError.hidden = true;
  els.like.hidden = true;
  delete els.listingView.dataset.listingId;
  els.title.focus();
  const [detail, similar] = await Promise.allSettled([
    api(`listings/${encodeURIComponent(id)}`),
    api(`listings/${encodeURIComponent(id)}/similar?k=${ROW_K}`),
  ]);
  if (seq !== openSeq) return;
  if (detail.status === "rejected") {
    showListingProblem(id, detail.reason);
    return;
  }
  const listing = normalise(detail.value);
  showDetail(listing);
  remember(listing.id, "viewed", listing.title);
  if (similar.status === "fulfilled") {
    const listings = resultsOf(similar.value).filter((l) => l.id !== listing.id);
    fill(els.similarList, listings);
    els.similarStatus.textContent = listings.length ? "" : "Nothing similar found.";
  } else {
    els.similarStatus.textContent = `Could not load similar listings: ${similar.reason.message}`;
  }
}

/** An unknown id says so in words (it may have been sold); any other failure gives the API's reason. */
function showListingProblem(id, error) {
  const missing = error.status === 404;
  els.title.textContent = missing ? "Listing not found" : "Listing unavailable";
  document.title = `${els.title.textContent} – ${PAGE_TITLE}`;
  els.listingError.textContent = missing
    ? `There is no listing “${id}”. It may have been sold or removed; search for something like it instead.`
    : `Could not load this listing: ${error.message}`;
  els.listingError.hidden = false;
  els.listingDetail.hidden = true;
  els.similar.hidden = true;
}

function showDetail(listing) {
  els.listingView.dataset.listingId = listing.id;
  els.listingView.dataset.title = listing.title;
  document.title = `${listing.title} – ${PAGE_TITLE}`;
  els.title.textContent = listing.title;
  els.price.textContent = formatPrice(listing.price);
  els.location2.textContent = listing.location;
  els.category2.textContent = listing.categoryPath || listing.category;
  els.description.textContent = listing.description;
  showLike(listing.id);
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

/** The Save button as the stored history and setting say (saving is remembering: not while
 * personalisation is off). Also when another tab forgot or cleared it: a press must not save
 * again what the user meant to unsave. */
function showLike(listingId) {
  els.like.hidden = !personalised();
  els.like.setAttribute("aria-pressed", String(isLiked(listingId)));
}

function wireListingView() {
  els.backLink.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    const depth = history.state?.listingDepth ?? 0;
    if (depth) {
      history.go(-depth); // the results as they were, with their scroll position
    } else {
      history.pushState(null, "", ROOT.pathname);
      showRoute();
    }
  });
  els.like.addEventListener("click", () => {
    const id = els.listingView.dataset.listingId;
    if (!id) return;
    const liked = !isLiked(id);
    setLiked(id, liked, els.listingView.dataset.title);
    els.like.setAttribute("aria-pressed", String(liked));
  });
}

/* ---------- history, personalisation, and "for you" ---------- */

/** On unless the user turned it off; the choice is kept in this browser like the history. */
function personalised() {
  try { return localStorage.getItem(PERSONALISE_KEY) !== "off"; } catch (e) { return true; }
}

function setPersonalised(on) {
  try {
    if (on) localStorage.removeItem(PERSONALISE_KEY);
    else localStorage.setItem(PERSONALISE_KEY, "off");
  } catch (e) { /* storage off: nothing is remembered anyway */ }
}

const HISTORY_EVENTS = new Set(["viewed", "liked", "searched"]);

/** The remembered events, only those the API accepts (storage written by an older page or another
 * tab must not make every search fail), newest HISTORY_MAX kept. */
function readHistory() {
  try {
    const h = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    if (!Array.isArray(h)) return [];
    return h.filter((e) => e && typeof e.listing_id === "string" && e.listing_id.length > 0
      && e.listing_id.length <= 200 && HISTORY_EVENTS.has(e.event)
      && (e.timestamp === undefined || e.timestamp === null || Number.isFinite(e.timestamp)))
      .slice(-HISTORY_MAX);
  } catch (e) {
    return [];
  }
}

function writeHistory(h) {
  h.splice(0, Math.max(0, h.length - HISTORY_MAX));
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h)); } catch (e) { /* storage full or off */ }
  showHistory();
}

/** What goes to the API: the events in the shape of rank.personalise.HistoryEvent (the titles stay
 * here, for the history panel), and nothing at all while personalisation is off. */
function historyToSend() {
  if (!personalised()) return [];
  const now = Date.now() / 1000;
  // A time the API would refuse (before 2000, or ahead of this clock) is left out rather than sent.
  const plausible = (t) => (Number.isFinite(t) && t >= 946684800 && t <= now ? t : undefined);
  return readHistory().map(({ listing_id, event, timestamp }) => ({ listing_id, event, timestamp: plausible(timestamp) }));
}

/** An event as kept: timestamp in seconds since the epoch, the title for the history panel. */
function historyEvent(listingId, event, title) {
  return { listing_id: String(listingId), event, timestamp: Math.round(Date.now() / 1000), title: title ?? "" };
}

/** Nothing is remembered while personalisation is off. */
function remember(listingId, event, title) {
  if (!personalised()) return;
  const h = readHistory();
  const last = h[h.length - 1];
  if (last && last.listing_id === String(listingId) && last.event === event) h.pop(); // reopened: keep the latest
  h.push(historyEvent(listingId, event, title));
  writeHistory(h);
}

function isLiked(listingId) {
  return readHistory().some((e) => e.listing_id === String(listingId) && e.event === "liked");
}

function setLiked(listingId, liked, title) {
  if (!personalised()) return;
  const h = readHistory().filter((e) => !(e.listing_id === String(listingId) && e.event === "liked"));
  if (liked) h.push(historyEvent(listingId, "liked", title));
  writeHistory(h);
}

/** How a remembered listing is named where its title is unknown. */
function entryName(item) {
  return item.title || `listing ${item.id}`;
}

/** The remembered listings, most recent first, each once, with what was done: viewed, saved. */
function rememberedListings() {
  const byId = new Map();
  for (const e of readHistory().reverse()) {
    const item = byId.get(e.listing_id) ?? { id: e.listing_id, title: "", events: new Set() };
    item.title ||= (e.title ?? "").trim();
    item.events.add(EVENT_PAST[e.event] ?? e.event);
    byId.set(e.listing_id, item);
  }
  return [...byId.values()];
}

const HISTORY_NOTE = {
  on: "Listings you open or save are remembered in this browser only (its local storage, at most "
    + `${HISTORY_MAX} events) and sent to this site with your searches, to lean results and the `
    + "recommendations towards them. Nothing is sent anywhere else.",
  off: "Personalisation is off: nothing you open or save is remembered, no history is sent with your "
    + "searches, and there are no recommendations. What was remembered before stays in this browser "
    + "until you clear it, and is used again if you turn personalisation back on.",
};

/** The history panel: the toggle, what it means, the remembered listings, and a way to forget them. */
function showHistory() {
  const on = personalised();
  const items = rememberedListings();
  els.personalise.checked = on;
  els.historyNote.textContent = on ? HISTORY_NOTE.on : HISTORY_NOTE.off;
  els.historySummary.textContent = !on ? "(personalisation off)"
    : items.length ? `(${items.length} listing${items.length === 1 ? "" : "s"})` : "(nothing yet)";
  els.historyList.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = listingHref(item.id);
    a.textContent = item.title || `Listing ${item.id}`;
    a.dataset.listingId = item.id;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = ` ${[...item.events].join(", ")}`;
    const forget = document.createElement("button");
    forget.type = "button";
    forget.className = "forget";
    forget.textContent = "Forget";
    forget.dataset.listingId = item.id;
    forget.setAttribute("aria-label", `Forget ${entryName(item)}`);
    li.append(a, what, forget);
    return li;
  }));
  els.historyClear.disabled = items.length === 0;
}

function wireHistory() {
  els.personalise.addEventListener("change", () => {
    setPersonalised(els.personalise.checked);
    showHistory();
    loadForYou();
    if (current) search(); // the results on screen were leaned (or not) by the history: ask again
  });
  els.historyClear.addEventListener("click", () => {
    try { localStorage.removeItem(HISTORY_KEY); } catch (e) { /* nothing stored */ }
    showHistory();
    loadForYou();
    setStatus("Your history was cleared.");
    els.personalise.focus(); // the button is disabled now: focus stays in the panel
  });
  els.historyList.addEventListener("click", (e) => {
    const forget = e.target.closest("button.forget");
    if (forget) { forgetListing(forget.dataset.listingId); return; }
    const a = e.target.closest("a[data-listing-id]");
    if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    goToListing(a.dataset.listingId);
  });
  // Another tab changed the history or the setting: this page follows.
  window.addEventListener("storage", (e) => {
    if (e.key === HISTORY_KEY || e.key === PERSONALISE_KEY || e.key === null) { showHistory(); loadForYou(); syncOpenListing(); }
  });
}

/** The open listing page (if one is shown) follows a change another tab made. */
function syncOpenListing() {
  const id = els.listingView.dataset.listingId;
  if (id && !els.listingView.hidden) showLike(id);
}

/** Forget one remembered listing (every event of it: viewed, saved), whether or not personalisation
 * is on; focus moves to the next entry's Forget button (the previous one's after the last, the
 * toggle when none is left), so a keyboard user can go on forgetting. */
function forgetListing(listingId) {
  const items = rememberedListings();
  const at = items.findIndex((i) => i.id === listingId);
  if (at < 0) return;
  writeHistory(readHistory().filter((e) => e.listing_id !== listingId)); // also rebuilds the panel
  loadForYou();
  setStatus(`Forgot “${entryName(items[at])}”.`);
  const left = els.historyList.querySelectorAll("button.forget");
  (left[Math.min(at, left.length - 1)] ?? els.personalise).focus();
}

/** The "for you" row shows only while personalisation is on, with some history, and the recommend
 * endpoint answers; each card says which remembered listing it is like. */
let forYouSeq = 0; // only the newest request may fill the row (history cleared or turned off meanwhile)

async function loadForYou() {
  const seq = ++forYouSeq;
  const history = historyToSend();
  if (!history.length) { els.forYou.hidden = true; return; }
  try {
    const body = await api("recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ history, k: ROW_K }),
    });
    if (seq !== forYouSeq || !personalised()) return; // a newer request, a cleared history, or turned off
    const listings = resultsOf(body);
    const focused = els.forYouList.contains(document.activeElement); // a card of the old row had focus
    fill(els.forYouList, listings);
    if (focused) $("for-you-heading").focus({ preventScroll: true });
    const used = new Set(history.map((e) => e.listing_id)); // listings, not events; the API's unknown ones aside
    for (const id of body?.unknown_listing_ids ?? []) used.delete(id);
    els.forYouNote.textContent = `Based on the ${used.size} listing${used.size === 1 ? "" : "s"} you opened or `
      + "saved in this browser (see Your history above).";
    els.forYou.hidden = listings.length === 0;
  } catch (e) {
    if (seq === forYouSeq) els.forYou.hidden = true;
  }
}

/* ---------- start ---------- */

function init() {
  history.scrollRestoration = "manual"; // the results' scroll position is put back by showSearchView
  wireCardList(els.resultsList);
  wireCardList(els.similarList);
  wireCardList(els.forYouList);
  wirePhotoPicker();
  wireListingView();
  wireHistory();
  wireSearchNotes();
  els.form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  els.category.addEventListener("change", () => search());
  els.sort.addEventListener("change", () => { sortIsBrowseDefault = false; search(); });
  els.loadMore.addEventListener("click", loadMore);
  // Back and forward: between searches, and between the results and the listings opened from them.
  window.addEventListener("popstate", showRoute);
  const legacy = /^#listing=(.+)$/.exec(location.hash); // links shared before listings had their own address
  if (legacy) history.replaceState(null, "", listingHref(decodeOrRaw(legacy[1])));
  const listing = listingInUrl();
  loadStateFromUrl(); // a listing's address holds no search: the form starts empty
  syncFilters(true);
  showHistory();
  document.body.dataset.ready = "false";
  Promise.allSettled([loadCategories(), loadForYou()]).then(() => {
    document.body.dataset.ready = "true";
    if (listing) showListingView(listing);
    else if (hasQuery()) search();
  });
}

init();
