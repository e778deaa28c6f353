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
    };
    var overrides = JSON.parse(container.getAttribute("data-config") || "{}");
    Object.keys(overrides).forEach(function (name) {
      config[name] = overrides[name];
    });
    window.ui = window.SwaggerUIBundle(config);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
