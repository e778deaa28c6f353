/* Start Swagger UI on /api/docs from the container's data- attributes (no inline script: see the CSP). */
(function () {
  "use strict";

  function init() {
    var container = document.getElementById("swagger-ui-container");
    if (!container || typeof window.SwaggerUIBundle !== "function") {
      return;
    }
    var config = {
      url: container.getAttribute("data-spec-url"),
      dom_id: "#swagger-ui-container",
      // No badge from validator.swagger.io: the CSP allows same-origin images only, and the
      // spec's URL would be sent to a third party. OPENAPI_SWAGGER_UI_CONFIG can set it again.
      validatorUrl: null,
      // Its colour themes for JSON and curl fall short of 4.5:1 contrast; plain text is readable.
      syntaxHighlight: false,
    };
    var overrides = JSON.parse(container.getAttribute("data-config") || "{}");
    Object.keys(overrides).forEach(function (name) {
      config[name] = overrides[name];
    });
    window.ui = window.SwaggerUIBundle(config);
    new MutationObserver(function () {
      makeAccessible(container);
    }).observe(container, { childList: true, subtree: true });
    makeAccessible(container);
  }

  // Swagger UI's markup falls short of WCAG in a few places that axe-core (tests/e2e) checks; these
  // attributes fill the gaps. React leaves them alone: it sets none of them itself.
  function makeAccessible(container) {
    // Its "post /api/v1/search" label hides the summary the button shows, so people who say what
    // they see would miss (WCAG 2.5.3): without it, the button is named by all of its text.
    container.querySelectorAll(".opblock-summary-control[aria-label]").forEach(function (button) {
      button.removeAttribute("aria-label");
    });
    container.querySelectorAll(".copy-to-clipboard > button:not([aria-label])").forEach(function (button) {
      button.setAttribute("aria-label", "Copy to clipboard");
    });
    // A file input, and the true/false choice of a boolean parameter (same_picture), are named by
    // their parameter's row.
    var unnamed = 'input[type="file"]:not([aria-label]), .parameters-col_description select:not([aria-label])';
    container.querySelectorAll(unnamed).forEach(function (field) {
      var row = field.closest("tr");
      var name = row && row.querySelector(".parameter__name");
      field.setAttribute("aria-label", name ? name.textContent.replace("*", "").trim() : "Value");
    });
    container.querySelectorAll("textarea.curl:not([aria-label])").forEach(function (textarea) {
      textarea.setAttribute("aria-label", "curl command");
    });
    // Long responses scroll: keyboard users must be able to reach them too.
    container.querySelectorAll("pre.microlight:not([tabindex])").forEach(function (pre) {
      pre.setAttribute("tabindex", "0");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
