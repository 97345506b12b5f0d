/* Listing search page: vanilla JS over the JSON API of the same server. No build step. */
"use strict";

const API = "v1"; // relative, so the page also works behind a path prefix
const PAGE_K = 24;
const ROW_K = 12;
const HISTORY_KEY = "listing-search.history";
const HISTORY_MAX = 50;
const PERSONALISE_KEY = "listing-search.personalise"; // "off" once the user turned personalisation off
const FILTER_DELAY_MS = 400; // a price or place typed applies once typing pauses: one search, not one per key
const SHOWN_TEXT_MAX = 80; // characters of the buyer's own words echoed back (a pasted page would fill the screen)
const SUGGEST_DELAY_MS = 150; // suggestions are asked for once typing pauses this long: not one request per key
const SUGGEST_K = 8;
const SUGGEST_MAX_CHARS = 100; // the API suggests for at most this much typed text (a longer box is a search, not a start)
const PAGE_TITLE = document.title;
const KM_PER_MILE = 1.609344; // the API measures km; UK buyers think in miles
const DEFAULT_WITHIN_MILES = "25";
const NEAR_ME_DIGITS = 2; // "Near me" sends the browser's position to 0.01° (~1 km): enough for a town-placed catalogue

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
  previewImg: $("photo-preview-img"), photoClear: $("photo-clear"),
  filtersBox: $("filters-box"), filtersCount: $("filters-count"), category: $("category"), priceMin: $("price-min"), priceMax: $("price-max"), location: $("location"),
  buying: $("buying"),
  near: $("near"), nearMe: $("near-me"), nearPlaces: $("near-places"), within: $("within"),
  status: $("status"), error: $("error"),
  results: $("results"), resultsList: $("results-list"), resultsSummary: $("results-summary"),
  didYouMean: $("did-you-mean"), searchedWords: $("searched-words"), typedWords: $("typed-words"),
  searchInstead: $("search-instead"), readWords: $("read-words"), readPhrases: $("read-phrases"),
  readInstead: $("read-instead"), photoGuess: $("photo-guess"), photoGuessChip: $("photo-guess-chip"),
  noMatch: $("no-match"), weakBest: $("weak-best"), sort: $("sort"), more: $("more"), moreCount: $("more-count"), loadMore: $("load-more"),
  forYou: $("for-you"), forYouList: $("for-you-list"), forYouNote: $("for-you-note"),
  historyBox: $("history-box"), historySummary: $("history-summary"), personalise: $("personalise"),
  historyNote: $("history-note"), historyList: $("history-list"), historyClear: $("history-clear"),
  skip: document.querySelector(".skip"), searchView: $("search-view"), listingView: $("listing-view"),
  backLink: $("back-link"), backText: $("back-text"), listingDetail: $("listing-detail"),
  title: $("listing-title"), price: $("listing-price"), location2: $("listing-location"), distance2: $("listing-distance"),
  category2: $("listing-category"), like: $("like"), likeText: $("like-text"), photos: $("listing-photos"),
  description: $("listing-description"),
  listingError: $("listing-error"), similar: $("similar"), similarList: $("similar-list"),
  similarStatus: $("similar-status"), cardTemplate: $("card-template"),
  viewer: $("viewer"), viewerTitle: $("viewer-title"), viewerCount: $("viewer-count"), viewerImg: $("viewer-img"),
  viewerStage: $("viewer-stage"), viewerPrev: $("viewer-prev"), viewerNext: $("viewer-next"),
  viewerClose: $("viewer-close"),
  savedLink: $("saved-link"), savedCount: $("saved-count"), savedView: $("saved-view"), savedNote: $("saved-note"),
  savedStatus: $("saved-status"), savedEmpty: $("saved-empty"), savedList: $("saved-list"),
  suggestions: $("suggestions"), posted2: $("listing-posted"),
  facets: $("facets"), facetCategory: $("facet-category"), facetPrice: $("facet-price"),
};

let chosenPhoto = null; // the File searched with, from the picker, a drop or a paste
let searchSeq = 0; // answers to older searches are ignored
let openSeq = 0;
let lastTyped = ""; // the words as typed for the last search, offered back when the API corrected them
let guessedCategory = null; // what the last photo looks like, offered as a category filter
let current = null; // the search on screen: {asked, searched, nextCursor, shown: Set of ids, total, loading, qs}
let sortIsBrowseDefault = false; // "Newest" was put in the sort box because there was nothing to be relevant to
const scrollOf = { search: 0, saved: 0 }; // where each list was scrolled to when it was left (for a listing)
let openedFrom = null; // the link (a card's, a history entry's) that opened a listing: focus goes back to it
let typingIn = null; // the filter whose typing made the last search: its next pause replaces that address
let lastPriceEdited = null; // the price a min-above-max mistake is said beside

/* ---------- API ---------- */

class ApiError extends Error {
  constructor(status, message, body = null) { super(message); this.status = status; this.body = body; }
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
  if (!resp.ok) throw new ApiError(resp.status, reasonOf(body, resp.status), body);
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
    duplicates: Array.isArray(raw.duplicates?.listing_ids) ? raw.duplicates.listing_ids.map(String) : [],
    buying: raw.buying === true, // a wanted ad: someone buying, not selling
    distanceKm: Number.isFinite(raw.distance_km) ? raw.distance_km : null, // from the search's "near"
    postedAt: Number.isFinite(raw.posted_at) ? raw.posted_at : null, // seconds since the epoch
    highlight: raw.highlight && typeof raw.highlight === "object" ? raw.highlight : null, // the words held
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

const countFormat = new Intl.NumberFormat("en-GB");
/** "1,234 listings", "1 listing". */
function listingsCount(n) {
  return `${countFormat.format(n)} listing${n === 1 ? "" : "s"}`;
}

const dateFormat = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric" });
/** "Posted 26 Feb 2022" (the buyer's own calendar day), with the date machine-readable in <time>; null
 * when the API gave no time. */
function postedNode(seconds) {
  if (!Number.isFinite(seconds)) return null;
  const day = new Date(seconds * 1000);
  const time = document.createElement("time");
  const pad = (n) => String(n).padStart(2, "0");
  time.dateTime = `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
  time.textContent = dateFormat.format(day);
  const out = document.createDocumentFragment();
  out.append("Posted ", time);
  return out;
}

/* ---------- why it matched: the words held, marked ---------- */

/** ``text`` as text nodes with the ``spans`` (the API's [start, end), in UTF-16 code units: JavaScript's
 * string indices) inside <mark>. Nothing goes through innerHTML: a title holding "<img onerror=…>" stays
 * words on the screen. */
function marked(text, spans) {
  const out = document.createDocumentFragment();
  let at = 0;
  for (const [start, end] of usableSpans(text, spans)) {
    if (start > at) out.append(text.slice(at, start));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, end);
    out.append(mark);
    at = end;
  }
  if (at < text.length) out.append(text.slice(at));
  return out;
}

/** The spans in order, each inside the text, not overlapping the one before, and not cutting an emoji's
 * surrogate pair in two; any other is left out rather than trusted (the words then show unmarked). */
function usableSpans(text, spans) {
  if (!Array.isArray(spans)) return [];
  const whole = spans.filter((s) => Array.isArray(s) && Number.isInteger(s[0]) && Number.isInteger(s[1]))
    .sort((a, b) => a[0] - b[0]);
  const out = [];
  let last = 0;
  for (const [start, end] of whole) {
    if (start < last || end <= start || end > text.length || cutsPair(text, start) || cutsPair(text, end)) continue;
    out.push([start, end]);
    last = end;
  }
  return out;
}

function cutsPair(text, i) {
  const low = text.charCodeAt(i), high = text.charCodeAt(i - 1);
  return i > 0 && i < text.length && low >= 0xdc00 && low <= 0xdfff && high >= 0xd800 && high <= 0xdbff;
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
  link.replaceChildren(marked(listing.title, listing.highlight?.title));
  link.href = listingHref(listing.id);
  showSnippet(node.querySelector(".snippet"), listing.highlight?.snippet);
  node.querySelector(".price").textContent = formatPrice(listing.price);
  node.querySelector(".location").textContent = listing.location;
  showDistance(node.querySelector(".distance"), listing.distanceKm);
  node.querySelector(".category").textContent = listing.category;
  const posted = postedNode(listing.postedAt);
  if (posted) {
    const p = node.querySelector(".posted");
    p.replaceChildren(posted);
    p.hidden = false; // "Newest first" can be checked at a glance
  }
  const match = node.querySelector(".match");
  if (listing.match) {
    match.textContent = listing.match;
    match.dataset.match = listing.match.replace(/\s+/g, "-");
  } else {
    match.remove(); // uncalibrated ranker: its raw scores mean nothing to a reader
  }
  if (listing.buying) {
    const tag = document.createElement("p");
    tag.className = "wanted";
    tag.textContent = "Wanted: this person is buying";
    node.querySelector(".card-body").append(tag);
  }
  if (listing.because) {
    const because = node.querySelector(".because");
    because.textContent = `Because you ${EVENT_PAST[listing.because.event] ?? "viewed"} “${listing.because.title}”`;
    because.hidden = false;
  }
  if (listing.duplicates.length) node.append(similarListings(listing.title, listing.duplicates));
  return node;
}

/** "N similar listings" under a card that stands for copies of one ad (counted once in the total): opens
 * to a link to each copy. Outside the card's article, so opening it or a copy does not open the card's own. */
function similarListings(title, ids) {
  const box = document.createElement("details");
  box.className = "similar";
  const summary = document.createElement("summary");
  summary.textContent = `${ids.length} similar listing${ids.length === 1 ? "" : "s"}`;
  const list = document.createElement("ul");
  list.setAttribute("aria-label", `Other listings of “${title}”`);
  ids.forEach((id, i) => {
    const link = document.createElement("a");
    link.href = listingHref(id);
    link.textContent = `Similar listing ${i + 1} of ${ids.length}`;
    link.addEventListener("click", (e) => {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      goToListing(id);
    });
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
  });
  box.append(summary, list);
  return box;
}

/** "3.2 miles away" (under 10 miles: one decimal); listings are placed at their town, so never "0". */
function formatDistance(km) {
  const miles = km / KM_PER_MILE;
  if (miles < 1) return "under 1 mile away";
  return `${miles < 10 ? miles.toFixed(1) : Math.round(miles)} miles away`;
}

function showDistance(el, km) {
  el.hidden = km === null || km === undefined;
  el.textContent = el.hidden ? "" : formatDistance(km);
}

const EVENT_PAST = { viewed: "viewed", liked: "saved", searched: "searched for" };

/** A few words of the description under the title, when they hold some of the words searched: they say
 * why a listing whose title lacks a word is there. Without a marked word it would be noise on a small card. */
function showSnippet(el, snippet) {
  const text = typeof snippet?.text === "string" ? snippet.text : "";
  const spans = usableSpans(text, snippet?.spans);
  el.hidden = !text || !spans.length;
  if (el.hidden) return;
  const shown = fromFirstMark(text, spans);
  el.replaceChildren(marked(shown.text, shown.spans));
}

const SNIPPET_LEAD = 16; // characters kept before the first word marked: on a phone's card it is on line one

/** The snippet from a word shortly before its first mark ("…" in front), so the two lines a card shows
 * hold a marked word; the spans shifted to match. Cut after a space: never inside a word or an emoji. */
function fromFirstMark(text, spans) {
  const first = spans[0][0];
  const space = text.indexOf(" ", first - SNIPPET_LEAD);
  if (first <= SNIPPET_LEAD || space < 0 || space + 1 >= first) return { text, spans };
  // What follows the space, behind a one-unit "…": index i of the text is i - space of what is shown.
  return { text: `…${text.slice(space + 1)}`, spans: spans.map(([s, e]) => [s - space, e - space]) };
}

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

/** The chip says "Your photo" beside its thumbnail: a file's name (a camera's IMG_2041, a UUID) means
 * nothing to a buyer, fills a phone's width, and need not be shown on a shared screen. */
function setPhoto(file) {
  if (els.previewImg.src.startsWith("blob:")) URL.revokeObjectURL(els.previewImg.src);
  chosenPhoto = file;
  els.preview.hidden = !file;
  els.dropzone.dataset.state = file ? "chosen" : "empty";
  if (file) {
    els.previewImg.src = URL.createObjectURL(file);
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
  price_desc: "highest price first", distance: "nearest first" };

/** The search as the form states it now; later pages of it are asked with this same snapshot. */
function searchOfForm({ spelling = true, readWords = true } = {}) {
  const filters = {};
  if (els.category.value) filters.category = els.category.value;
  if (els.priceMin.value !== "") filters.price_min = Number(els.priceMin.value);
  if (els.priceMax.value !== "") filters.price_max = Number(els.priceMax.value);
  if (els.location.value.trim()) filters.location = els.location.value.trim();
  if (els.buying.value) filters.buying = els.buying.value === "true";
  if (els.near.value.trim()) {
    filters.near = els.near.value.trim();
    filters.within_km = Math.round(Number(els.within.value || DEFAULT_WITHIN_MILES) * KM_PER_MILE * 1000) / 1000;
  }
  return { words: els.q.value.trim(), photo: chosenPhoto, filters, sort: els.sort.value || "relevance", spelling,
    readWords };
}

/** One page of a search as the API's form fields: the first, or the one after ``cursor`` (the API's
 * ``next_cursor``: a listing added meanwhile neither shifts nor repeats what follows). */
function searchForm(asked, cursor = null) {
  const fd = new FormData();
  if (asked.words) fd.append("text", asked.words);
  if (asked.photo) fd.append("image", asked.photo, asked.photo.name || "photo");
  fd.append("k", String(PAGE_K));
  if (!asked.spelling) fd.append("spelling", "false");
  if (asked.readWords === false) fd.append("read_words", "false"); // "under £50" searched as words
  for (const [name, value] of Object.entries(asked.filters)) fd.append(name, String(value));
  fd.append("sort", asked.sort);
  if (cursor) fd.append("cursor", cursor);
  const history = historyToSend();
  if (history.length) fd.append("history", JSON.stringify(history)); // leans results towards it
  return fd;
}

/** Words, a photo or a filter: anything to search or browse by. */
function hasQuery() {
  const filtered = [els.category, els.priceMin, els.priceMax, els.location, els.buying, els.near]
    .some((el) => el.value.trim());
  return Boolean(els.q.value.trim() || chosenPhoto || filtered);
}

/** Filters alone: the API lists the listings that pass them, and counts them. */
function isBrowse(s) {
  return !s.words && !s.photo;
}

/** The buyer's own text as echoed back: at most SHOWN_TEXT_MAX characters (whole code points, so an
 * emoji is not cut in half), then an ellipsis. */
function shortened(text, max = SHOWN_TEXT_MAX) {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max).join("").trimEnd()}…`;
}

/** What a search looks for, in words: "“oak table” and your photo, in Home & Garden, £10 to £50, near Leeds". */
function describeSearch({ words, photo, filters }) {
  const what = [words ? `“${shortened(words)}”` : "", photo ? "your photo" : ""].filter(Boolean).join(" and ");
  const parts = [what];
  if (filters.category) parts.push(`in ${filters.category}`);
  const min = filters.price_min, max = filters.price_max;
  if (min != null && max != null) parts.push(`${formatMoney(min)} to ${formatMoney(max)}`);
  else if (min != null) parts.push(`from ${formatMoney(min)}`);
  else if (max != null) parts.push(`up to ${formatMoney(max)}`);
  if (filters.location) parts.push(`near ${shortened(filters.location)}`);
  if (filters.buying === false) parts.push("for sale only");
  else if (filters.buying === true) parts.push("wanted ads only");
  if (filters.near) {
    const miles = Math.round((Number(filters.within_km) / KM_PER_MILE) * 10) / 10;
    const where = /^\s*[-+]?[\d.]+\s*,\s*[-+]?[\d.]+\s*$/.test(filters.near) ? "you" : shortened(filters.near);
    parts.push(`within ${miles} mile${miles === 1 ? "" : "s"} of ${where}`); // a position is the buyer's own
  }
  return parts.filter(Boolean).join(", ");
}

/** "for “oak table”, in Home & Garden" for a query; "in Home & Garden" when browsing. */
function subjectOf(s) {
  return isBrowse(s) ? describeSearch(s) : `for ${describeSearch(s)}`;
}

/** Browsing "by relevance" has nothing to be relevant to: the API lists newest first (nearest first near a place). */
function orderOf(s) {
  if (isBrowse(s) && s.sort === "relevance") return s.filters.near ? ORDER.distance : ORDER.newest;
  return ORDER[s.sort] ?? ORDER.relevance;
}

/** A photo search whose best listing is only this is not a find (the API's ``best_match``). */
const WEAK_BEST = new Set(["related", "weak match"]);

/** Notes above the results (did you mean, photo guess, no good match) belong to one answer only. */
function hideNotes() {
  els.didYouMean.hidden = true;
  els.readWords.hidden = true;
  els.photoGuess.hidden = true;
  els.noMatch.hidden = true;
  els.weakBest.hidden = true;
  els.resultsList.classList.remove("weak");
  guessedCategory = null;
}

/** No results on screen: the old ones would sit under a header that no longer describes them. */
function clearResults(summary) {
  hideNotes();
  els.resultsList.replaceChildren();
  els.resultsSummary.textContent = summary;
  els.more.hidden = true;
  showFacets(null);
}

function showAnswer(body, asked) {
  const listings = resultsOf(body);
  const searched = { ...asked, words: body?.searched ?? asked.words, filters: body?.filters ?? asked.filters };
  current.searched = searched;
  current.total = Number.isInteger(body?.total) ? body.total : null;
  current.nextCursor = body?.next_cursor ?? null;
  showBuyingCounts(body?.facets?.buying);
  if (!listings.length) {
    clearResults(isBrowse(searched) ? `No listings ${describeSearch(searched)}. Try wider filters.`
      : `No listings for ${describeSearch(searched)}. Try fewer words or wider filters.`);
    if (body?.no_match) els.noMatch.hidden = false; // nothing matched: say so, show nothing weak
    showFacets(body?.facets); // the other categories and prices may hold some: the way out is one press away
    return;
  }
  for (const l of listings) current.shown.add(l.id);
  fill(els.resultsList, listings);
  showSummary();
  showMore();
  showNotes(body);
  showFacets(body?.facets);
}

const BUYING_OPTIONS = { false: "For sale only", true: "Wanted only" };

/** The ads filter's choices with the answer's counts (its ``buying`` facet, counted under the other
 * filters): "For sale only (311)", "Wanted only (1)"; without counts, the plain words. */
function showBuyingCounts(facet) {
  const counts = new Map((Array.isArray(facet) ? facet : []).map((f) => [String(f.value), f.count]));
  for (const option of els.buying.options) {
    if (!(option.value in BUYING_OPTIONS)) continue;
    const n = counts.get(option.value);
    option.textContent = Number.isInteger(n) ? `${BUYING_OPTIONS[option.value]} (${n})` : BUYING_OPTIONS[option.value];
  }
}

/** "312 listings in Home & Garden, up to £50, newest first.": the total the API counts (words and photos
 * too: every listing the search matches, not the page shown), else those shown. */
function showSummary() {
  const n = current.total ?? current.shown.size;
  els.resultsSummary.textContent = `${listingsCount(n)} ${subjectOf(current.searched)}, ${orderOf(current.searched)}.`;
}

/** "Load more" stays while the API says where a next page starts. */
function showMore() {
  const done = !current.nextCursor;
  els.more.hidden = done;
  const shown = countFormat.format(current.shown.size);
  els.moreCount.textContent = current.total !== null ? `Showing ${shown} of ${countFormat.format(current.total)}.`
    : `Showing ${shown}.`;
}

function showNotes(body) {
  hideNotes();
  const corrections = Array.isArray(body?.corrections) ? body.corrections : [];
  if (corrections.length && body.searched) {
    els.searchedWords.textContent = shortened(body.searched);
    els.typedWords.textContent = shortened(lastTyped);
    els.didYouMean.hidden = false;
  }
  const read = Array.isArray(body?.read_from_words) ? body.read_from_words : [];
  if (read.length) { // "sofa under £50 near Glasgow": the price and the place became filters
    els.readPhrases.textContent = `Searching ${body.searched ? `“${shortened(body.searched)}”` : "every listing"}: `
      + readPhrasesOf(read) + ".";
    els.readWords.hidden = false;
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
  } else if (current.searched?.photo && WEAK_BEST.has(body?.best_match)) {
    els.weakBest.hidden = false; // a photo always finds neighbours: say when even the best is not the thing
  }
}

function setBusy(busy) {
  els.results.setAttribute("aria-busy", String(busy));
  els.button.disabled = busy;
  els.loadMore.disabled = busy;
}

/** Search as the form states it. ``typing`` is the filter whose typing paused: the pauses of one edit
 * make one history entry. ``submitted`` (Enter, the Search button): a mistake in a field takes the
 * focus there; otherwise it is only said beside its field, and focus stays where the buyer is. */
async function search({ spelling = true, readWords = true, typing = null, submitted = false } = {}) {
  clearTimeout(filterTimer);
  closeSuggestions(); // whatever started it (Enter, a photo pasted while typing, a filter), the list would hide the answer
  const continued = typing !== null && typing === typingIn;
  typingIn = typing;
  if (!formIsValid(typing, submitted)) return; // the results on screen stay: the last good search's
  if (typing && current && queryOfForm() === current.qs) return; // typed back to what is on screen
  showError("");
  const seq = ++searchSeq; // answers to an older search (or its later pages) are no longer wanted
  syncSort();
  syncFilters();
  if (!hasQuery()) {
    saveStateToUrl(continued);
    current = null;
    setStatus("");
    setBusy(false);
    clearResults(PROMPT);
    return;
  }
  const asked = searchOfForm({ spelling, readWords });
  const previous = current;
  current = { asked, searched: asked, nextCursor: null, shown: new Set(), total: null, loading: false,
    qs: queryOfForm() };
  lastTyped = asked.words;
  setStatus(isBrowse(asked) ? `Looking for listings ${describeSearch(asked)}…`
    : `Searching for ${describeSearch(asked)}…`, true);
  els.more.hidden = true;
  setBusy(true);
  // Sent before the address is written: a pushState takes milliseconds the server can use meanwhile.
  const answer = api("search", { method: "POST", body: searchForm(asked) });
  saveStateToUrl(continued);
  try {
    const body = await answer;
    if (seq !== searchSeq) return;
    showAnswer(body, asked);
    setStatus("");
  } catch (e) {
    if (seq !== searchSeq) return;
    setStatus("");
    const problems = fieldProblemsOf(e);
    if (problems.length) { // the API refused a value the buyer typed: said beside it; the last good results stay
      current = previous;
      if (current) showMore();
      showFieldErrors(problems, { focus: submitted });
      return;
    }
    clearResults(`The search ${subjectOf(asked)} failed.`);
    showError(e.message);
  } finally {
    if (seq === searchSeq) setBusy(false);
  }
}

/* ---------- the fields' own mistakes: said beside the field, in words, before anything is sent ---------- */

const FIELD_ERROR_SUFFIX = "-error"; // each field's message sits in the element with its id plus this
let filterTimer = 0;

/** Checks the filters the page can check itself (the API would refuse them with a 422 naming its own
 * parameters); says each mistake beside its field. False: nothing is sent. */
function formIsValid(typing, submitted) {
  const problems = filterProblems(typing ?? lastPriceEdited);
  showFieldErrors(problems, { focus: submitted });
  return problems.length === 0;
}

/** The prices' mistakes as [{field, message}]: not a number, below £0, or a min above the max (said
 * beside the price being changed: the other is the bound it ran into). */
function filterProblems(edited) {
  const problems = [];
  for (const [field, name] of [[els.priceMin, "min"], [els.priceMax, "max"]]) {
    const message = priceProblem(field, name);
    if (message) problems.push({ field, message });
  }
  if (problems.length) return problems;
  const min = els.priceMin.value === "" ? null : Number(els.priceMin.value);
  const max = els.priceMax.value === "" ? null : Number(els.priceMax.value);
  if (min !== null && max !== null && min > max) {
    problems.push({ field: edited === els.priceMin ? els.priceMin : els.priceMax,
      message: `The min price (${formatMoney(min)}) is above the max price (${formatMoney(max)}). `
        + "Lower the min or raise the max." });
  }
  return problems;
}

function priceProblem(field, name) {
  // A number box holding "12a" reports an empty value and badInput: the typing is not lost on the buyer.
  if (field.validity.badInput) return `Enter the ${name} price as a number of pounds, like 25 or 7.50.`;
  if (field.value === "") return null;
  const n = Number(field.value);
  if (!Number.isFinite(n)) return `That ${name} price is too large to search by.`;
  if (n < 0) return `The ${name} price can’t be below £0.`;
  return null;
}

/** Each field with a mistake gets its sentence below it, aria-invalid and aria-describedby; the others are cleared. */
function showFieldErrors(problems, { focus = false } = {}) {
  for (const field of [els.q, els.category, els.priceMin, els.priceMax, els.location, els.near, els.within]) {
    const problem = problems.find((p) => p.field === field);
    const message = $(field.id + FIELD_ERROR_SUFFIX);
    message.textContent = problem?.message ?? "";
    if (problem) {
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", message.id);
    } else {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("aria-describedby");
    }
  }
  const first = problems[0]?.field;
  if (first && first !== els.q) els.filtersBox.open = true; // folded on a phone: the sentence must show
  if (first && focus) first.focus();
}

/** What the API says when it refuses a value (a 422 naming its parameter), in words a buyer understands,
 * beside the field; [] when the refusal is about anything else (the page then shows the API's reason). */
const FIELD_SENTENCES = {
  text: [() => els.q, "These words can’t be searched: keep to plain text of at most 1,000 characters."],
  category: [() => els.category, "Choose a category from the list."],
  price_min: [() => els.priceMin, "Enter the min price as a number of pounds, £0 or more."],
  price_max: [() => els.priceMax, "Enter the max price as a number of pounds, £0 or more."],
  location: [() => els.location, "This place can’t be searched: enter a town or area, like Leeds."],
  near: [() => els.near, "This place can’t be searched from: enter a town, like Leeds."],
  within_km: [() => els.within, "Choose a distance from the list."],
};

function fieldProblemsOf(error) {
  if (error?.status !== 422) return [];
  const body = error.body ?? {};
  if (typeof body.detail === "string" && /^near: unknown place/.test(body.detail)) { // the API names close places
    const matches = Array.isArray(body.matches) ? body.matches.slice(0, 3) : [];
    const typed = shortened(els.near.value.trim(), 40);
    return [{ field: els.near, message: matches.length ? `We don’t know “${typed}”. Did you mean ${matches.join(", ")}?`
      : `We don’t know “${typed}”. Enter a town, like Leeds.` }];
  }
  if (typeof body.detail === "string" && /^near: /.test(body.detail)) return [{ field: els.near, message: body.detail.slice(6) }];
  if (typeof body.detail === "string" && /^price_min \S+ is above price_max/.test(body.detail)) {
    return [{ field: els.priceMax, message: "The min price is above the max price. Lower the min or raise the max." }];
  }
  const named = (Array.isArray(body.errors) ? body.errors : []).map((e) =>
    (Array.isArray(e?.loc) ? e.loc[e.loc.length - 1] : null));
  if (!named.length || !named.every((name) => name in FIELD_SENTENCES)) return [];
  return [...new Set(named)].map((name) => ({ field: FIELD_SENTENCES[name][0](), message: FIELD_SENTENCES[name][1] }));
}

/** Prices and the place apply as they are typed, once typing pauses; Enter still searches at once.
 * The category and the sort apply as they change. */
function wireFilters() {
  for (const field of [els.priceMin, els.priceMax, els.location]) {
    field.addEventListener("input", () => {
      if (field !== els.location) lastPriceEdited = field;
      clearTimeout(filterTimer);
      filterTimer = setTimeout(() => search({ typing: field }), FILTER_DELAY_MS);
    });
  }
  els.category.addEventListener("change", () => search());
  els.buying.addEventListener("change", () => search());
  wireNear();
  els.sort.addEventListener("change", () => { sortIsBrowseDefault = false; search(); });
}

/** "Near": a town typed (places offered as it is typed; the search runs once it is chosen or left), or
 * "Near me": the browser's position, asked only on that click, sent to 0.01°. The radius is in miles. */
function wireNear() {
  let placesTimer = 0;
  els.near.addEventListener("input", () => {
    clearTimeout(placesTimer);
    placesTimer = setTimeout(() => suggestPlaces(els.near.value.trim()), FILTER_DELAY_MS / 2);
  });
  els.near.addEventListener("change", () => search({ typing: els.near }));
  els.within.addEventListener("change", () => { if (els.near.value.trim()) search(); });
  els.nearMe.addEventListener("click", () => {
    if (!navigator.geolocation) {
      showFieldErrors([{ field: els.near, message: "This browser can’t share your location: type a town instead." }]);
      return;
    }
    els.nearMe.disabled = true;
    setStatus("Finding your location…", true);
    navigator.geolocation.getCurrentPosition((pos) => {
      els.nearMe.disabled = false;
      setStatus("");
      const { latitude, longitude } = pos.coords;
      els.near.value = `${latitude.toFixed(NEAR_ME_DIGITS)},${longitude.toFixed(NEAR_ME_DIGITS)}`;
      search();
    }, () => {
      els.nearMe.disabled = false;
      setStatus("");
      showFieldErrors([{ field: els.near, message: "Your location isn’t available: type a town instead." }]);
    }, { maximumAge: 600_000, timeout: 15_000 });
  });
}

async function suggestPlaces(prefix) {
  if (!prefix || /^[-+\d.,\s]+$/.test(prefix)) { els.nearPlaces.replaceChildren(); return; }
  try {
    const body = await api(`places?prefix=${encodeURIComponent(prefix)}&k=8`);
    if (els.near.value.trim() !== prefix) return; // typing went on
    els.nearPlaces.replaceChildren(...(body?.places ?? []).map((p) => new Option(p.name)));
  } catch (e) {
    console.warn("places unavailable:", e.message); // typing a whole town still works
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

/** The phrases the API read as filters, as the buyer typed them: "under £50 and near Glasgow". */
function readPhrasesOf(read) {
  const phrases = [...new Set(read.map((r) => String(r.phrase)))].map((p) => `“${shortened(p)}”`);
  return (phrases.length > 1 ? `${phrases.slice(0, -1).join(", ")} and ${phrases.at(-1)}` : phrases[0])
    + (phrases.length > 1 ? " read as filters" : " read as a filter");
}

function wireSearchNotes() {
  // Both buttons hide once used: focus moves to the results heading rather than being lost.
  els.searchInstead.addEventListener("click", () => {
    els.q.value = lastTyped;
    $("results-heading").focus();
    search({ spelling: false });
  });
  els.readInstead.addEventListener("click", () => {
    $("results-heading").focus();
    search({ readWords: false });
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
  location: "location", buying: "buying", near: "near", within: "within", sort: "sort" };

function queryOfForm() {
  const params = new URLSearchParams();
  for (const [key, el] of Object.entries(URL_FIELDS)) {
    const v = els[el].value.trim();
    if (key === "within" && (!els.near.value.trim() || v === DEFAULT_WITHIN_MILES)) continue;
    if (v && !(key === "sort" && (v === "relevance" || sortIsBrowseDefault))) params.set(key, v);
  }
  const qs = params.toString();
  return qs ? `?${qs}` : "";
}

let searchInUrl = location.search; // the search the form and results show, as the address writes it

/** A new history entry per search; ``replace``: the same edit went on (a price typed in pauses). */
function saveStateToUrl(replace = false) {
  const qs = queryOfForm();
  if (qs !== location.search) history[replace ? "replaceState" : "pushState"](null, "", qs || ROOT.pathname);
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
  if (els.buying.selectedIndex < 0) els.buying.value = ""; // an unknown value in the address: both kinds
  if (!els.sort.value) els.sort.value = "relevance"; // missing or unknown
  if (!els.within.value) els.within.value = DEFAULT_WITHIN_MILES;
  sortIsBrowseDefault = false;
  syncSort();
}

/** Browsing (no words, no photo) has nothing to be relevant to: the API lists the newest first, so the
 * sort box says "Newest" and offers no "Best match". Words or a photo bring "Best match" back, unless
 * the user chose "Newest" themselves. */
function syncSort() {
  const browsing = !els.q.value.trim() && !chosenPhoto;
  const near = Boolean(els.near.value.trim());
  const bestMatch = els.sort.querySelector('option[value="relevance"]');
  const nearest = els.sort.querySelector('option[value="distance"]');
  bestMatch.hidden = bestMatch.disabled = browsing;
  nearest.hidden = nearest.disabled = !near; // nearest to nowhere: the API refuses it
  const browseDefault = near ? "distance" : "newest"; // what browsing "by relevance" lists
  if (!near && els.sort.value === "distance") {
    els.sort.value = browsing ? "newest" : "relevance";
    sortIsBrowseDefault = browsing;
  }
  if (browsing && (els.sort.value === "relevance" || (sortIsBrowseDefault && els.sort.value !== browseDefault))) {
    els.sort.value = browseDefault;
    sortIsBrowseDefault = true;
  } else if (!browsing && sortIsBrowseDefault) {
    if (els.sort.value === "newest" || els.sort.value === "distance") els.sort.value = "relevance";
    sortIsBrowseDefault = false;
  }
}

function setCategory(name) {
  if (name && ![...els.category.options].some((o) => o.value === name)) els.category.add(new Option(name, name));
  els.category.value = name;
}

/** Filters start open on wide screens, or whenever one is set; folded on phones to keep results in view. */
function syncFilters(initial = false) {
  const active = [els.category, els.priceMin, els.priceMax, els.location, els.buying, els.near]
    .filter((el) => el.value.trim()).length;
  els.filtersCount.textContent = active ? `(${active} on)` : "";
  if (initial && (active || window.matchMedia("(min-width: 561px)").matches)) els.filtersBox.open = true;
}

/* ---------- categories ---------- */

let rootCategories = []; // the catalogue's root categories, in the API's order: the select keeps this order

async function loadCategories() {
  try {
    const body = await api("categories");
    const names = Array.isArray(body) ? body : (body?.categories ?? []);
    rootCategories = names.map((c) => (typeof c === "string" ? c : (c.name ?? c.root_category))).filter(Boolean);
    fillCategorySelect(lastCategoryFacet);
    syncFilters(true);
  } catch (e) {
    // Without the list the filter still works as "All categories"; searching is unaffected.
    console.warn("categories unavailable:", e.message);
  }
}

/* ---------- counts and facets: how the listings found spread over categories and prices ---------- */

/* The API counts each facet over what the search matches under its *other* filters: with a category
 * chosen, its siblings keep their counts, so another one is a press away and says what it holds. */
let lastCategoryFacet = null; // the last answer's category facet: the select shows its counts
let lastPriceFacet = null; // the last answer's price bands: a band's button sets its prices

const SEP = " / ";
/** A category path's segments as the API compares them: trimmed, any case. */
function segmentsOf(path) {
  return String(path ?? "").split("/").map((p) => p.trim().toLowerCase()).filter(Boolean);
}

function samePath(a, b) {
  return segmentsOf(a).join("/") === segmentsOf(b).join("/");
}

/** The category facet as the API gave it, each entry checked: [{value, count, children: [{value, count}]}]. */
function categoryFacetOf(facets) {
  const entry = (e) => typeof e?.value === "string" && e.value.trim() && Number.isInteger(e.count);
  if (!Array.isArray(facets?.category)) return null;
  return facets.category.filter(entry).map((root) => ({ value: root.value, count: root.count,
    children: (Array.isArray(root.children) ? root.children : []).filter(entry) }));
}

function priceFacetOf(facets) {
  if (!Array.isArray(facets?.price)) return null;
  return facets.price.filter((b) => Number.isFinite(b?.min) && (b.max === null || Number.isFinite(b.max))
    && Number.isInteger(b.count));
}

/** The facets beside the results (a column on wide screens, a strip over them on phones) and the
 * counts in the category select; ``null`` (no search on screen): both go. */
function showFacets(facets) {
  const categories = categoryFacetOf(facets);
  const prices = priceFacetOf(facets);
  lastCategoryFacet = categories;
  lastPriceFacet = prices;
  fillCategorySelect(categories);
  const focused = els.facets.contains(document.activeElement) ? document.activeElement.dataset.facet : null;
  els.facetCategory.replaceChildren(...(categories ? categoryFacetItems(categories) : []));
  els.facetPrice.replaceChildren(...(prices ? priceFacetItems(prices) : []));
  for (const list of [els.facetCategory, els.facetPrice]) list.closest(".facet").hidden = !list.children.length;
  els.facets.hidden = !els.facetCategory.children.length && !els.facetPrice.children.length;
  // A class, not a :has() rule: :has would be checked again at every card the answer adds.
  els.facets.parentElement.classList.toggle("with-facets", !els.facets.hidden);
  for (const list of [els.facetCategory, els.facetPrice]) rove(list, list.querySelector('[aria-pressed="true"]'));
  // The button pressed was rebuilt with the answer: focus goes to its twin, not to the page's start.
  const twin = focused && els.facets.querySelector(`button[data-facet="${CSS.escape(focused)}"]`);
  if (twin) {
    rove(twin.closest(".facet-list"), twin);
    twin.focus({ preventScroll: true });
  }
  scrollPressedIntoStrip();
}

/* Each facet is a toolbar: one Tab stop (its chosen value, else its first), the arrow keys, Home and End
 * move within it. Ten price bands and a dozen categories would otherwise be twenty Tabs to the cards. */
function rove(list, current) {
  const buttons = [...list.querySelectorAll("button")];
  const stop = buttons.includes(current) ? current : buttons[0];
  for (const b of buttons) b.tabIndex = b === stop ? 0 : -1;
}

function onFacetKey(e) {
  const button = e.target.closest("button[data-facet]");
  const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, Home: -Infinity, End: Infinity }[e.key];
  if (!button || step === undefined || e.altKey || e.ctrlKey || e.metaKey) return;
  const list = button.closest(".facet-list");
  const buttons = [...list.querySelectorAll("button")];
  const at = Math.min(buttons.length - 1, Math.max(0, buttons.indexOf(button) + step));
  e.preventDefault(); // the page does not scroll
  rove(list, buttons[at]);
  buttons[at].focus();
}

/** One facet value: a toggle button saying its name and how many listings it holds. */
function facetButton(key, label, count, pressed) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "facet-option";
  button.dataset.facet = key;
  button.setAttribute("aria-pressed", String(pressed));
  const name = document.createElement("span");
  name.className = "facet-name";
  name.textContent = label;
  const n = document.createElement("span");
  n.className = "count";
  const words = document.createElement("span");
  words.className = "visually-hidden";
  words.textContent = count === 1 ? " listing" : " listings";
  n.append(countFormat.format(count), words);
  button.append(name, " ", n);
  const li = document.createElement("li");
  li.append(button);
  return li;
}

/** "All categories", then each root (most listings first); the chosen root (or the root of the chosen
 * subcategory) with its next level under it. Roots holding nothing are left out, unless chosen. */
function categoryFacetItems(roots) {
  const chosen = els.category.value;
  const chosenRoot = segmentsOf(chosen)[0];
  // With no category chosen, the answer's total: a group of copies filed under two roots counts under
  // each, so the roots' sum can pass the results; with one chosen, the roots' sum (the total without it).
  const all = !chosen && Number.isInteger(current?.total) ? current.total : roots.reduce((n, r) => n + r.count, 0);
  const items = [facetButton("category:", "All categories", all, !chosen)];
  for (const root of roots) {
    const open = segmentsOf(root.value)[0] === chosenRoot;
    if (!root.count && !open) continue;
    const li = facetButton(`category:${root.value}`, root.value, root.count, samePath(root.value, chosen));
    const children = open ? root.children.filter((c) => c.count || samePath(c.value, chosen)) : [];
    if (children.length) {
      const sub = document.createElement("ul");
      sub.className = "facet-children";
      sub.setAttribute("aria-label", `In ${root.value}`);
      sub.append(...children.map((c) => facetButton(`category:${c.value}`, lastSegment(c.value), c.count,
        samePath(c.value, chosen))));
      li.append(sub);
    }
    items.push(li);
  }
  return items;
}

function lastSegment(path) {
  const parts = path.split("/").map((p) => p.trim()).filter(Boolean);
  return parts[parts.length - 1] ?? path;
}

/* A price band [min, max) as the price filters state it: the filters include their max, the band does
 * not, so the max sent is a penny under the band's (£10 to £24.99): the count on the button is then the
 * number of listings its press finds. The first band needs no min, the last no max. */
const PENNY = 0.01;

function bandFilters(band) {
  return { min: band.min > 0 ? band.min : null, max: band.max === null ? null : Math.round((band.max - PENNY) * 100) / 100 };
}

function bandLabel(band) {
  if (band.max === null) return `${formatMoney(band.min)} and over`;
  if (band.min <= 0) return `Under ${formatMoney(band.max)}`;
  return `${formatMoney(band.min)} to ${formatMoney(band.max)}`;
}

function bandIsChosen(band) {
  const { min, max } = bandFilters(band);
  const typed = (el) => (el.value === "" ? null : Number(el.value));
  return typed(els.priceMin) === min && typed(els.priceMax) === max;
}

/** The price bands holding some listings (or chosen), cheapest first. */
function priceFacetItems(bands) {
  return bands.filter((b) => b.count || bandIsChosen(b))
    .map((b) => facetButton(`price:${b.min}`, bandLabel(b), b.count, bandIsChosen(b)));
}

/** Pressing a facet value chooses it; pressing the pressed one again takes it back (a subcategory back
 * to its root, a root or a price band to none). The search runs at once, like the select's change. */
function chooseFacet(button) {
  const [kind, value] = splitOnce(button.dataset.facet, ":");
  const pressed = button.getAttribute("aria-pressed") === "true";
  if (kind === "category") {
    const parent = segmentsOf(value).length > 1 ? value.split("/")[0].trim() : "";
    setCategory(pressed ? parent : value);
  } else {
    const band = lastPriceFacet?.find((b) => String(b.min) === value);
    const { min, max } = pressed || !band ? { min: null, max: null } : bandFilters(band);
    els.priceMin.value = min ?? "";
    els.priceMax.value = max ?? "";
    lastPriceEdited = null;
  }
  search();
}

function splitOnce(text, sep) {
  const at = text.indexOf(sep);
  return [text.slice(0, at), text.slice(at + sep.length)];
}

/** On a phone the facets are one sideways strip: the chosen value is scrolled to its start, its
 * subcategories after it (sideways only: the page itself does not move). */
const STRIP = window.matchMedia("(max-width: 899px)"); // as the style sheet lays the facets out as a strip

function scrollPressedIntoStrip() {
  if (!STRIP.matches) return; // a column: nothing to scroll (and no style worked out before the cards are)
  const pressed = [...els.facets.querySelectorAll('button[aria-pressed="true"]')]
    .find((b) => b.dataset.facet !== "category:");
  if (!pressed) { els.facets.scrollLeft = 0; return; }
  const strip = els.facets.getBoundingClientRect(), box = pressed.getBoundingClientRect();
  if (box.left < strip.left || box.right > strip.right - 48) els.facets.scrollLeft += box.left - strip.left - 24;
}

function wireFacets() {
  els.facets.addEventListener("keydown", onFacetKey);
  els.facets.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-facet]");
    if (button) chooseFacet(button);
  });
}

/** The category select: each root with its count (the API's order of roots is kept, so a keyboard
 * user's arrows do not jump as counts change), the chosen root's subcategories under it, indented. */
function fillCategorySelect(roots) {
  const chosen = els.category.value;
  const chosenRoot = segmentsOf(chosen)[0];
  const byRoot = new Map((roots ?? []).map((r) => [segmentsOf(r.value)[0], r]));
  const names = [...rootCategories];
  for (const r of roots ?? []) if (!names.some((n) => samePath(n, r.value))) names.push(r.value);
  const counted = (label, n) => (roots ? `${label} (${countFormat.format(n ?? 0)})` : label);
  const all = !chosen && Number.isInteger(current?.total) ? current.total : (roots ?? []).reduce((n, r) => n + r.count, 0);
  const options = [new Option(counted("All categories", all), "")];
  for (const name of names) {
    const facet = byRoot.get(segmentsOf(name)[0]);
    options.push(new Option(counted(name, facet?.count), name));
    if (segmentsOf(name)[0] !== chosenRoot) continue;
    for (const child of facet?.children ?? []) {
      options.push(new Option(`\u00a0\u00a0\u00a0${counted(lastSegment(child.value), child.count)}`, child.value));
    }
  }
  els.category.replaceChildren(...options);
  setCategory(chosen);
}

/* ---------- suggestions while typing: the search box is an ARIA combobox with a listbox ---------- */

/* Asked once typing pauses (SUGGEST_DELAY_MS); an answer for words since changed is dropped (and its
 * request aborted), so typing never waits on it. Arrow keys move through the options (the focus stays in
 * the box: aria-activedescendant), Enter or a click/tap chooses one, Escape or leaving the box closes. */
let suggestTimer = 0;
let suggestSeq = 0; // only the answer to the newest request is shown
let suggestAbort = null;
let suggestions = []; // the options shown: [{text, kind, count}]
let suggestionsFor = null; // the text they complete
let activeSuggestion = -1; // the option the arrow keys are on; -1: none (Enter searches what is typed)

function wireSuggestions() {
  els.q.addEventListener("input", scheduleSuggestions);
  els.q.addEventListener("keydown", onComboKey);
  els.q.addEventListener("blur", closeSuggestions);
  // A press on an option must not take the focus from the box (its blur would close the list first).
  els.suggestions.addEventListener("mousedown", (e) => e.preventDefault());
  els.suggestions.addEventListener("click", (e) => {
    const option = e.target.closest('[role="option"]');
    if (option) chooseSuggestion(Number(option.dataset.index));
  });
}

function scheduleSuggestions() {
  cancelSuggestions();
  activateSuggestion(-1); // the options no longer complete what is typed: Enter searches the words
  const typed = els.q.value;
  if (!typed.trim() || typed.length > SUGGEST_MAX_CHARS) { closeSuggestions(); return; }
  suggestTimer = setTimeout(() => loadSuggestions(typed), SUGGEST_DELAY_MS);
}

/** The pending request (or the pause before it) is no longer wanted. */
function cancelSuggestions() {
  clearTimeout(suggestTimer);
  suggestSeq++;
  suggestAbort?.abort();
  suggestAbort = null;
}

async function loadSuggestions(typed) {
  const seq = ++suggestSeq;
  suggestAbort = new AbortController();
  let body;
  try {
    body = await api(`suggest?q=${encodeURIComponent(typed)}&k=${SUGGEST_K}`, { signal: suggestAbort.signal });
  } catch (e) {
    if (seq === suggestSeq) closeSuggestions(); // a help, not the search: a failure just shows none
    return;
  }
  if (seq !== suggestSeq || els.q.value !== typed || document.activeElement !== els.q) return;
  showSuggestions(typed, Array.isArray(body?.suggestions) ? body.suggestions : []);
}

function showSuggestions(typed, list) {
  suggestions = list.filter((s) => typeof s?.text === "string" && s.text.trim()
    && (s.kind === "query" || s.kind === "category")).slice(0, SUGGEST_K);
  suggestionsFor = typed;
  els.suggestions.replaceChildren(...suggestions.map(suggestionOption));
  setExpanded(suggestions.length > 0);
}

/** One option: the words (or "in" and the category), and how many listings it would find. */
function suggestionOption(s, i) {
  const li = document.createElement("li");
  li.id = `suggestion-${i}`;
  li.className = "suggestion";
  li.setAttribute("role", "option");
  li.setAttribute("aria-selected", "false");
  li.dataset.index = String(i);
  li.dataset.kind = s.kind;
  const text = document.createElement("span");
  text.className = "suggestion-text";
  if (s.kind === "category") {
    const kind = document.createElement("span");
    kind.className = "suggestion-kind";
    kind.textContent = "in ";
    text.append(kind);
  }
  text.append(...completed(s, suggestionsFor ?? ""));
  li.append(text);
  if (Number.isInteger(s.count)) {
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = ` ${listingsCount(s.count)}`;
    li.append(count);
  }
  return li;
}

/** A query's words as typed, then what it adds in bold (the eye goes to the difference); a category,
 * or words that do not start with what is typed (a spelling corrected), plain. */
function completed(s, typed) {
  const start = typed.trimStart();
  if (s.kind !== "query" || !start || !s.text.toLowerCase().startsWith(start.toLowerCase())) return [s.text];
  const rest = s.text.slice(start.length);
  if (!rest) return [s.text];
  const strong = document.createElement("strong");
  strong.textContent = rest;
  return [s.text.slice(0, start.length), strong];
}

function setExpanded(open) {
  els.suggestions.hidden = !open;
  els.q.setAttribute("aria-expanded", String(open));
  if (!open) activateSuggestion(-1);
}

/** Closes the list and drops what is on its way (Escape, Enter, leaving the box). */
function closeSuggestions() {
  cancelSuggestions();
  setExpanded(false);
}

function activateSuggestion(i) {
  activeSuggestion = i;
  for (const option of els.suggestions.children) {
    option.setAttribute("aria-selected", String(Number(option.dataset.index) === i));
  }
  const option = i >= 0 ? $(`suggestion-${i}`) : null;
  if (option) {
    els.q.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  } else {
    els.q.removeAttribute("aria-activedescendant");
  }
}

function onComboKey(e) {
  if (e.isComposing || e.ctrlKey || e.metaKey) return;
  const open = !els.suggestions.hidden;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    if (!open && !reopenSuggestions()) return;
    e.preventDefault(); // the caret stays where it is
    if (e.altKey) return; // Alt+Down opens the list without choosing
    const n = suggestions.length, by = e.key === "ArrowDown" ? 1 : -1;
    activateSuggestion(activeSuggestion < 0 ? (by > 0 ? 0 : n - 1) : (activeSuggestion + by + n) % n);
  } else if (e.key === "Enter" && open && activeSuggestion >= 0) {
    e.preventDefault(); // the option, not the typed words
    chooseSuggestion(activeSuggestion);
  } else if (e.key === "Escape" && open) {
    e.preventDefault(); // a search box would empty itself: Escape only closes the list
    closeSuggestions();
  } else if (e.key === "Tab") {
    closeSuggestions();
  }
}

/** Arrow keys on a closed list open it again, if its options still complete what is typed; otherwise
 * they are asked for now. */
function reopenSuggestions() {
  if (suggestions.length && suggestionsFor === els.q.value) { setExpanded(true); return true; }
  if (els.q.value.trim() && els.q.value.length <= SUGGEST_MAX_CHARS) { cancelSuggestions(); loadSuggestions(els.q.value); }
  return false;
}

/** A query fills the box and searches; a category becomes the category filter (the words typed were
 * its name, so the box empties) and lists what it holds. */
function chooseSuggestion(i) {
  const s = suggestions[i];
  if (!s) return;
  closeSuggestions();
  if (s.kind === "category") {
    els.q.value = "";
    setCategory(s.text);
  } else {
    els.q.value = s.text;
  }
  search({ submitted: true });
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

/** Which page is on screen: "search", "listing" or "saved". */
function shownView() {
  if (!els.listingView.hidden) return "listing";
  return els.savedView.hidden ? "search" : "saved";
}

/** Open a listing as a new page of the browser's history; Back returns to where it was opened (the
 * results or the Saved page, whose name the back link then says). */
function goToListing(id) {
  const depth = history.state?.listingDepth ?? 0; // listings opened since a list; 0 if none was seen
  const from = shownView();
  if (from !== "listing") {
    openedFrom = document.activeElement?.closest("a") ?? null; // a card's or a history entry's link
  }
  // From a listing reached without a list (a shared link), there are no results to go back to.
  const next = from !== "listing" ? 1 : depth ? depth + 1 : 0;
  const list = from === "listing" ? history.state?.from ?? "search" : from;
  history.pushState({ listingDepth: next, from: list }, "", listingHref(id));
  showRoute();
}

/** The view the address names: a listing's page, the Saved page, or the search page with the search in
 * the address. The list left behind keeps its scroll position, put back when it is shown again. */
function showRoute() {
  const leaving = shownView();
  if (leaving !== "listing") scrollOf[leaving] = window.scrollY;
  if (els.viewer.open) els.viewer.close(); // Back while a photo is full screen: the photo goes with its page
  const id = listingInUrl();
  if (id) showListingView(id);
  else if (savedInUrl()) showSavedView(leaving);
  else showSearchView(leaving);
}

/** Shows one of the three views; the skip link leads to its heading. */
function showOnly(view, skipTo, skipText) {
  for (const v of [els.searchView, els.listingView, els.savedView]) v.hidden = v !== view;
  els.skip.href = skipTo;
  els.skip.textContent = skipText;
}

function showListingView(id) {
  showOnly(els.listingView, "#listing-title", "Skip to the listing");
  const depth = history.state?.listingDepth ?? 0;
  els.backText.textContent = !depth ? "Search all listings"
    : history.state?.from === "saved" ? "Back to saved listings" : "Back to results";
  window.scrollTo(0, 0);
  openListing(id);
}

function showSearchView(leaving) {
  openSeq++; // a listing still loading is no longer wanted
  showOnly(els.searchView, "#results-heading", "Skip to results");
  document.title = PAGE_TITLE;
  if (location.search !== searchInUrl) {
    loadStateFromUrl();
    search();
  }
  if (leaving === "search") return;
  showHistory();
  loadForYou();
  window.scrollTo(0, scrollOf.search);
  if (leaving !== "listing") return;
  // Focus goes back to the link that opened the listing (a history entry's link is rebuilt by
  // showHistory above: found again by its listing id), else to the results' heading.
  (linkBack(els.searchView) ?? $("results-heading")).focus({ preventScroll: true });
}

/** The link that opened the listing just left, or its rebuilt twin (same listing id) inside ``view``. */
function linkBack(view) {
  if (openedFrom?.isConnected && view.contains(openedFrom)) return openedFrom;
  const id = openedFrom?.closest("[data-listing-id]")?.dataset.listingId;
  if (!id) return null;
  const sel = CSS.escape(id);
  return view.querySelector(`a[data-listing-id="${sel}"], article[data-listing-id="${sel}"] .card-link`);
}

/** "?near=Leeds" when the search on screen is near a place: the listing page says how far it is. */
function nearParam() {
  const near = current?.asked?.filters?.near;
  return near ? `?near=${encodeURIComponent(near)}` : "";
}

async function openListing(id) {
  const seq = ++openSeq;
  els.title.textContent = "Loading…";
  document.title = `Loading… – ${PAGE_TITLE}`;
  for (const el of [els.price, els.location2, els.category2, els.posted2, els.description]) el.textContent = "";
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
    api(`listings/${encodeURIComponent(id)}${nearParam()}`),
    api(`listings/${encodeURIComponent(id)}/similar?k=${ROW_K}`),
  ]);
  if (seq !== openSeq) return;
  if (detail.status === "rejected") {
    showListingProblem(id, detail.reason);
    return;
  }
  const listing = normalise(detail.value);
  listingCache.set(listing.id, listing);
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

let shownListing = null; // the listing on its page: the full-screen viewer shows its photos

function showDetail(listing) {
  shownListing = listing;
  els.listingView.dataset.listingId = listing.id;
  els.listingView.dataset.title = listing.title;
  document.title = `${listing.title} – ${PAGE_TITLE}`;
  els.title.textContent = listing.title;
  els.price.textContent = formatPrice(listing.price);
  els.location2.textContent = listing.location;
  showDistance(els.distance2, listing.distanceKm);
  els.category2.textContent = listing.categoryPath || listing.category;
  els.posted2.replaceChildren(postedNode(listing.postedAt) ?? "");
  els.description.textContent = listing.description;
  showLike(listing.id);
  els.photos.replaceChildren(...listing.photos.map((p, i) => photoButton(listing, p, i)));
}

/** One photo of the strip: a button (named by its photo's alt text) that opens it full screen. */
function photoButton(listing, photo, i) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "photo-open";
  button.dataset.photo = String(i);
  button.title = "View full screen";
  button.setAttribute("aria-haspopup", "dialog");
  const img = document.createElement("img");
  img.src = photoUrl(photo.url);
  img.alt = photoAlt(listing, i);
  img.loading = "lazy";
  button.append(img);
  li.append(button);
  return li;
}

function photoAlt(listing, i) {
  return `${listing.title}, photo ${i + 1} of ${listing.photos.length}`;
}

/** The Save button as the stored history and setting say (saving is remembering: not while
 * personalisation is off). Also when another tab forgot or cleared it: a press must not save
 * again what the user meant to unsave. */
function showLike(listingId) {
  els.like.hidden = !personalised();
  showLikeState(isLiked(listingId));
}

/** The button says its state in words ("Save" / "Saved"), not only by its colour and aria-pressed. */
function showLikeState(liked) {
  els.like.setAttribute("aria-pressed", String(liked));
  els.likeText.textContent = liked ? "Saved" : "Save";
  els.like.title = liked ? "Remove it from your saved listings" : "Keep it on your Saved page";
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
    showLikeState(liked);
  });
}

/* ---------- the full-screen photo viewer: a modal <dialog> (the page behind is inert, focus stays
 * inside, Escape closes it); arrow keys, the buttons, or a swipe go through the photos ---------- */

const SWIPE_MIN_PX = 40; // a shorter slide is a wobbly tap, not a swipe
let viewerAt = 0;
let swipe = null; // where a touch (or pen, or mouse drag) on the photo started

function openViewer(at) {
  if (!shownListing?.photos.length) return;
  els.viewerTitle.textContent = shownListing.title;
  showViewerPhoto(at);
  els.viewer.showModal();
  els.viewerClose.focus();
}

function showViewerPhoto(at) {
  const photos = shownListing.photos;
  viewerAt = (at + photos.length) % photos.length; // past the last comes the first again
  els.viewerImg.src = photoUrl(photos[viewerAt].url);
  els.viewerImg.alt = photoAlt(shownListing, viewerAt);
  els.viewerCount.textContent = `Photo ${viewerAt + 1} of ${photos.length}`;
  els.viewerPrev.hidden = els.viewerNext.hidden = photos.length < 2;
}

function stepViewer(by) {
  if (shownListing?.photos.length > 1) showViewerPhoto(viewerAt + by);
}

function wireViewer() {
  els.photos.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-photo]");
    if (button) openViewer(Number(button.dataset.photo));
  });
  els.viewerClose.addEventListener("click", () => els.viewer.close());
  els.viewerPrev.addEventListener("click", () => stepViewer(-1));
  els.viewerNext.addEventListener("click", () => stepViewer(1));
  els.viewer.addEventListener("keydown", (e) => {
    if (e.key === "Tab") { keepTabInViewer(e); return; }
    const by = { ArrowLeft: -1, ArrowRight: 1 }[e.key];
    if (!by || e.altKey || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    stepViewer(by);
  });
  // Closed (the button, Escape, or the page changing): focus goes back to the photo now shown, in the strip.
  els.viewer.addEventListener("close", () => {
    const button = els.photos.querySelector(`button[data-photo="${viewerAt}"]`);
    if (button && !els.listingView.hidden) {
      button.focus({ preventScroll: true });
      button.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  });
  wireSwipe();
}

/** Tab and Shift+Tab go round the viewer's buttons: the page behind is inert, and Chromium would
 * otherwise take focus out to the browser's own controls, leaving nothing on the page focused. */
function keepTabInViewer(e) {
  const buttons = [...els.viewer.querySelectorAll("button")].filter((b) => !b.hidden);
  const first = buttons[0], last = buttons[buttons.length - 1];
  if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
}

/** A sideways swipe on the photo goes to the next (leftwards) or previous one; the stage lets the
 * browser keep vertical panning and pinch-zoom (touch-action in the style sheet). */
function wireSwipe() {
  els.viewerStage.addEventListener("pointerdown", (e) => {
    if (e.target.closest("button")) return;
    swipe = { id: e.pointerId, x: e.clientX, y: e.clientY };
  });
  els.viewerStage.addEventListener("pointerup", (e) => {
    if (!swipe || e.pointerId !== swipe.id) return;
    const dx = e.clientX - swipe.x, dy = e.clientY - swipe.y;
    swipe = null;
    if (Math.abs(dx) >= SWIPE_MIN_PX && Math.abs(dx) > 1.5 * Math.abs(dy)) stepViewer(dx < 0 ? 1 : -1);
  });
  els.viewerStage.addEventListener("pointercancel", () => { swipe = null; });
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

/** Over HISTORY_MAX events the oldest views go first: a save stays until it is unsaved (the Saved page
 * lists them), unless saves alone fill the history. */
function writeHistory(h) {
  while (h.length > HISTORY_MAX) {
    const view = h.findIndex((e) => e.event !== "liked");
    h.splice(view >= 0 ? view : 0, 1);
  }
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
  const h = withoutSave(readHistory(), listingId);
  if (liked) h.push(historyEvent(listingId, "liked", title));
  writeHistory(h);
}

function withoutSave(h, listingId) {
  return h.filter((e) => !(e.listing_id === String(listingId) && e.event === "liked"));
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
  showSavedCount();
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
    if (e.key === HISTORY_KEY || e.key === PERSONALISE_KEY || e.key === null) {
      showHistory();
      loadForYou();
      syncOpenListing();
      if (!els.savedView.hidden) showSaved();
    }
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

/* ---------- the Saved page (saved/): what the buyer saved, kept in this browser with the history ---------- */

const listingCache = new Map(); // id -> the listing as last fetched, or null when the API says it is gone
let savedSeq = 0;

/** The saved listings, the most recently saved first: [{id, title}]. */
function savedEntries() {
  const seen = new Set();
  const saved = [];
  for (const e of readHistory().reverse()) {
    if (e.event !== "liked" || seen.has(e.listing_id)) continue;
    seen.add(e.listing_id);
    saved.push({ id: e.listing_id, title: (e.title ?? "").trim() });
  }
  return saved;
}

/** "Saved (3)" in the header, on every page. */
function showSavedCount() {
  const n = savedEntries().length;
  els.savedCount.textContent = n ? ` (${n})` : "";
}

function goToSaved() {
  if (!savedInUrl()) history.pushState(null, "", "saved");
  showRoute();
}

function savedInUrl() {
  return /^saved\/?$/.test(location.pathname.slice(ROOT.pathname.length));
}

function showSavedView(leaving) {
  openSeq++; // a listing still loading is no longer wanted
  showOnly(els.savedView, "#saved-heading", "Skip to saved listings");
  document.title = `Saved listings – ${PAGE_TITLE}`;
  window.scrollTo(0, 0);
  showSaved().then((shown) => {
    if (!shown || els.savedView.hidden) return;
    if (leaving === "listing") {
      window.scrollTo(0, scrollOf.saved);
      (linkBack(els.savedView) ?? $("saved-heading")).focus({ preventScroll: true });
    } else if (leaving !== "saved") {
      $("saved-heading").focus({ preventScroll: true });
    }
  });
}

const SAVED_NOTE = {
  on: "Saved in this browser only, with your history: clearing the history clears them too.",
  off: "Saved in this browser only. Personalisation is off, so Save is not offered on listings until you "
    + "turn it back on (Your history, on the search page).",
};

/** Fills the Saved page: the listings are asked for once per visit of the site (a saved listing may
 * have been sold since: it says so); true once shown, false when a newer fill took over. */
async function showSaved() {
  const seq = ++savedSeq;
  const saved = savedEntries();
  els.savedNote.textContent = personalised() ? SAVED_NOTE.on : SAVED_NOTE.off;
  const missing = saved.filter((s) => !listingCache.has(s.id));
  if (missing.length) els.savedStatus.textContent = "Loading your saved listings…";
  const answers = await Promise.allSettled(missing.map((s) => api(`listings/${encodeURIComponent(s.id)}`)));
  if (seq !== savedSeq) return false;
  answers.forEach((a, i) => {
    if (a.status === "fulfilled") listingCache.set(missing[i].id, normalise(a.value));
    else if (a.reason?.status === 404) listingCache.set(missing[i].id, null);
  });
  els.savedStatus.textContent = "";
  els.savedEmpty.hidden = saved.length > 0;
  els.savedList.replaceChildren(...saved.map(savedCard));
  return true;
}

/** A saved listing's card with a Remove button; one the API no longer has (or could not give) keeps
 * its stored title and says so. */
function savedCard(entry) {
  const known = listingCache.get(entry.id);
  const listing = known ?? normalise({ id: entry.id, title: entry.title || `Listing ${entry.id}`, photos: [] });
  const node = card(listing);
  if (!known) {
    node.querySelector(".price").textContent = known === null ? "No longer listed" : "Could not load it just now";
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "unsave";
  remove.textContent = "Remove";
  remove.dataset.listingId = entry.id;
  remove.setAttribute("aria-label", `Remove ${listing.title} from saved`);
  node.append(remove);
  return node;
}

/** Unsaving from the Saved page works whether or not personalisation is on (like Forget); focus moves
 * to the next Remove button (the previous one's after the last, the heading when none is left). */
async function removeSaved(listingId) {
  const at = savedEntries().findIndex((s) => s.id === listingId);
  if (at < 0) return;
  const title = listingCache.get(listingId)?.title ?? savedEntries()[at].title;
  writeHistory(withoutSave(readHistory(), listingId));
  loadForYou();
  await showSaved();
  els.savedStatus.textContent = `Removed “${title || `listing ${listingId}`}” from your saved listings.`;
  const left = els.savedList.querySelectorAll("button.unsave");
  (left[Math.min(at, left.length - 1)] ?? $("saved-heading")).focus();
}

function wireSaved() {
  wireCardList(els.savedList);
  els.savedList.addEventListener("click", (e) => {
    const remove = e.target.closest("button.unsave");
    if (remove) removeSaved(remove.dataset.listingId);
  });
  els.savedLink.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    goToSaved();
  });
  $("saved-back").addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    history.pushState(null, "", searchInUrl || ROOT.pathname); // the search last shown, as it was
    showRoute();
  });
}

/* ---------- start ---------- */

function init() {
  history.scrollRestoration = "manual"; // the results' scroll position is put back by showSearchView
  wireCardList(els.resultsList);
  wireCardList(els.similarList);
  wireCardList(els.forYouList);
  wirePhotoPicker();
  wireListingView();
  wireViewer();
  wireHistory();
  wireSaved();
  wireSearchNotes();
  wireFilters();
  wireSuggestions();
  wireFacets();
  els.form.addEventListener("submit", (e) => { e.preventDefault(); search({ submitted: true }); });
  els.loadMore.addEventListener("click", loadMore);
  // Back and forward: between searches, and between the results and the listings opened from them.
  window.addEventListener("popstate", showRoute);
  const legacy = /^#listing=(.+)$/.exec(location.hash); // links shared before listings had their own address
  if (legacy) history.replaceState(null, "", listingHref(decodeOrRaw(legacy[1])));
  const listing = listingInUrl();
  const saved = savedInUrl();
  loadStateFromUrl(); // a listing's or the Saved page's address holds no search: the form starts empty
  syncFilters(true);
  showHistory();
  if (!listing && !saved) els.q.focus(); // the search page is for typing: no Tabs through the header first
  document.body.dataset.ready = "false";
  Promise.allSettled([loadCategories(), loadForYou()]).then(() => {
    document.body.dataset.ready = "true";
    if (listing) showListingView(listing);
    else if (saved) showSavedView(null);
    else if (hasQuery()) search();
  });
}

init();
