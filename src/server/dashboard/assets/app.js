// The dashboard's only script (plain ES module, type-checked by tsconfig.browser.json). The views
// are rendered by the server; this asks for the current one again with the token the viewer
// entered, kept in this tab's session storage and sent only in an Authorization header to this
// origin: never in a URL, a cookie or local storage. Without a token (or without JavaScript)
// the server's public view stays as it is.
const KEY = "attic-dashboard-token";

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`dashboard: no #${id}`);
  return element;
}

/** @returns {string | null} */
function storedToken() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Ask for the view again with the token, and put it in place of the public one. */
async function refresh() {
  const token = storedToken();
  byId("token-forget").hidden = token === null;
  if (token === null) return;
  const url = new URL(location.href);
  url.searchParams.set("fragment", "1");
  const main = byId("content");
  main.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` }, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
    // the server escapes every value it puts in a view
    main.innerHTML = await response.text();
    document.documentElement.dataset.view = "token";
  } catch {
    main.insertAdjacentHTML("afterbegin", '<p class="warn" role="alert">The server could not be reached.</p>');
  } finally {
    main.removeAttribute("aria-busy");
  }
}

function setUp() {
  const form = /** @type {HTMLFormElement} */ (byId("token-form"));
  const input = /** @type {HTMLInputElement} */ (byId("token-input"));
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (token === "") return;
    sessionStorage.setItem(KEY, token);
    input.value = "";
    void refresh().then(() => byId("content").focus());
  });
  byId("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    // the public view, as the server renders it without a token
    location.reload();
  });
  void refresh().finally(() => {
    document.documentElement.dataset.ready = "1";
  });
}

setUp();
