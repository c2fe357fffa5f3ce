// adaptune studio: the little JavaScript the pages use. No framework, no build step.
"use strict";

/** The page's CSRF token (every state-changing request carries it). */
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

/** fetch() with the CSRF header; JSON in and out. */
async function studioFetch(url, options = {}) {
  const headers = Object.assign({"X-CSRF-Token": csrfToken(), "Accept": "application/json"},
                                options.headers || {});
  const response = await fetch(url, Object.assign({}, options, {headers}));
  return response;
}

/** Ask before a form that changes state is sent (data-confirm holds the question). */
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
