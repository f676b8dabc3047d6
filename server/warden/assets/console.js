// Warden console: conveniences on top of pages that work without script.
// No inline handlers (the CSP forbids them), no third-party code.
"use strict";

// Forms that ask before they act (revoking a key).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
