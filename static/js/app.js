/* Progressive enhancement for the server-rendered pages: every form works without this file. */
(function () {
  "use strict";

  var previewUrls = new WeakMap();

  function showSelection(zone, input) {
    var file = input.files && input.files[0];
    var old = zone.querySelector(".dropzone-selection");
    if (old) {
      old.remove();
    }
    var oldUrl = previewUrls.get(zone);
    if (oldUrl) {
      URL.revokeObjectURL(oldUrl);
      previewUrls.delete(zone);
    }
    if (!file) {
      return;
    }
    var box = document.createElement("span");
    box.className = "dropzone-selection";
    if (file.type.indexOf("image/") === 0) {
      var url = URL.createObjectURL(file);
      previewUrls.set(zone, url);
      var img = document.createElement("img");
      img.className = "dropzone-preview";
      img.src = url;
      img.alt = "";
      box.appendChild(img);
    }
    var name = document.createElement("span");
    name.className = "dropzone-file";
    name.textContent = "Selected: " + file.name;
    box.appendChild(name);
    zone.appendChild(box);
  }

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  function setupDropzone(zone) {
    var input = zone.querySelector('input[type="file"]');
    if (!input) {
      return;
    }
    zone.addEventListener("dragenter", function (event) {
      if (hasFiles(event)) {
        event.preventDefault();
        zone.classList.add("dragover");
      }
    });
    zone.addEventListener("dragover", function (event) {
      if (hasFiles(event)) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        zone.classList.add("dragover");
      }
    });
    zone.addEventListener("dragleave", function (event) {
      if (!zone.contains(event.relatedTarget)) {
        zone.classList.remove("dragover");
      }
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragover");
      var files = event.dataTransfer && event.dataTransfer.files;
      if (!files || files.length === 0) {
        return;
      }
      try {
        input.files = files;
      } catch (err) {
        return; // very old browsers: the native file picker still works
      }
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", function () {
      showSelection(zone, input);
    });
    if (input.files && input.files.length) {
      showSelection(zone, input); // e.g. after back navigation
    }
  }

  function setupBusyForm(form) {
    if (!form.querySelector('input[type="file"]')) {
      return;
    }
    form.addEventListener("submit", function (event) {
      var button = form.querySelector('button[type="submit"], button:not([type])');
      if (!button) {
        return;
      }
      if (button.disabled) {
        event.preventDefault(); // already submitting
        return;
      }
      // Disable after the browser has collected the form data, so the submission itself is unaffected.
      window.setTimeout(function () {
        button.disabled = true;
        button.classList.add("is-loading");
        button.setAttribute("aria-busy", "true");
      }, 0);
    });
  }

  function resetBusyButtons() {
    // Pages restored from the back/forward cache keep their disabled state: undo it.
    document.querySelectorAll("button.is-loading").forEach(function (button) {
      button.disabled = false;
      button.classList.remove("is-loading");
      button.removeAttribute("aria-busy");
    });
  }

  function setupPaste() {
    var input = document.getElementById("search-image");
    if (!input || !input.form || typeof DataTransfer === "undefined") {
      return;
    }
    document.addEventListener("paste", function (event) {
      var target = event.target;
      if (target && (target.isContentEditable || (/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) && target.type !== "file"))) {
        return; // let normal text pasting work
      }
      var items = (event.clipboardData && event.clipboardData.files) || [];
      var image = null;
      for (var i = 0; i < items.length; i += 1) {
        if (items[i].type.indexOf("image/") === 0) {
          image = items[i];
          break;
        }
      }
      if (!image) {
        return;
      }
      event.preventDefault();
      var transfer = new DataTransfer();
      transfer.items.add(image);
      try {
        input.files = transfer.files;
      } catch (err) {
        return;
      }
      input.dispatchEvent(new Event("change", { bubbles: true }));
      if (typeof input.form.requestSubmit === "function") {
        input.form.requestSubmit(); // fires the submit handler and runs validation
      } else {
        input.form.submit();
      }
    });
  }

  function init() {
    document.querySelectorAll(".dropzone").forEach(setupDropzone);
    document.querySelectorAll("form").forEach(setupBusyForm);
    setupPaste();
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        resetBusyButtons();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
