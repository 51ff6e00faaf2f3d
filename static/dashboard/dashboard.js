// The dashboard's only script. Live regions poll with htmx and are merged into the page with
// idiomorph, so what a person is doing survives every update:
// - a field they typed in, a box they ticked, keeps their value until they submit or reset it;
// - a <details> they opened or closed stays that way;
// - focus, selection and scroll are untouched (idiomorph keeps the focused node).
// Nothing here is inline in the HTML, so a strict Content-Security-Policy holds.
(function () {
  "use strict";

  // ---- live updates that keep what the user is doing

  function isUserEdited(element) {
    return element instanceof Element && element.hasAttribute("data-edited");
  }

  document.addEventListener("input", function (event) {
    const field = event.target;
    if (field instanceof HTMLInputElement || field instanceof HTMLTextAreaElement || field instanceof HTMLSelectElement) {
      field.setAttribute("data-edited", "");
    }
  });

  function forgetEdits(form) {
    form.querySelectorAll("[data-edited]").forEach(function (field) {
      field.removeAttribute("data-edited");
    });
  }
  document.addEventListener("reset", function (event) {
    forgetEdits(event.target);
  });

  // Whether the user opened or closed a <details> themselves.
  document.addEventListener(
    "toggle",
    function (event) {
      if (event.target instanceof HTMLDetailsElement) {
        event.target.setAttribute("data-edited", "");
      }
    },
    true,
  );

  if (window.Idiomorph) {
    Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (name, element) {
      // The mark itself must survive: the server's copy never has it.
      if (name === "data-edited") {
        return false;
      }
      if (name === "open" && element instanceof HTMLDetailsElement && isUserEdited(element)) {
        return false;
      }
      if ((name === "value" || name === "checked") && isUserEdited(element)) {
        return false;
      }
      // A <select> the user changed keeps its choice.
      if (name === "selected" && element instanceof HTMLOptionElement && isUserEdited(element.closest("select"))) {
        return false;
      }
      return true;
    };
  }

  // Polls run only while the tab is visible, and never while a live region's form is being submitted.
  document.addEventListener("htmx:beforeRequest", function (event) {
    const source = event.detail.elt;
    if (source instanceof Element && source.hasAttribute("data-poll") && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  // ---- confirmations and small helpers (no inline handlers)

  document.addEventListener("submit", function (event) {
    const form = event.target;
    const submitter = event.submitter;
    const message =
      (submitter && submitter.getAttribute("data-confirm")) || (form instanceof Element && form.getAttribute("data-confirm"));
    if (message && !window.confirm(message)) {
      event.preventDefault();
      return;
    }
    forgetEdits(form);
  });

  document.addEventListener("change", function (event) {
    const box = event.target;
    if (box instanceof HTMLInputElement && box.hasAttribute("data-select-all")) {
      const scope = box.closest("form") || document;
      scope.querySelectorAll(box.getAttribute("data-select-all")).forEach(function (other) {
        other.checked = box.checked;
        other.setAttribute("data-edited", "");
      });
    }
  });
})();
