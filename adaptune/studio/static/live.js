// adaptune studio: live parts of a page. An element with data-poll-url is refreshed every
// data-poll-ms from that JSON's "html" (rendered and escaped by the server); polling stops once
// the JSON says "final". A "cancellable" field shows or hides the page's #cancel-form.
"use strict";

function startPolling(element) {
  const url = element.dataset.pollUrl;
  const ms = Number(element.dataset.pollMs || 2000);
  let shown = null;
  async function tick() {
    try {
      const response = await studioFetch(url);
      if (response.ok) {
        const data = await response.json();
        if (data.html !== shown) {
          element.innerHTML = data.html;
          shown = data.html;
        }
        const cancel = document.getElementById("cancel-form");
        if (cancel && "cancellable" in data) {
          cancel.hidden = !data.cancellable;
        }
        if (data.final) {
          return;
        }
      }
    } catch (error) {
      // The studio is restarting, or the network blinked: try again at the next tick.
    }
    setTimeout(tick, ms);
  }
  setTimeout(tick, ms);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll-url]").forEach(startPolling);
});
