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
    var count = input.files.length;
    var box = document.createElement("span");
    box.className = "dropzone-selection";
    if (count === 1 && file.type.indexOf("image/") === 0) {
      var url = URL.createObjectURL(file);
      previewUrls.set(zone, url);
      var img = document.createElement("img");
      img.className = "dropzone-preview";
      img.onerror = function () {
        img.remove(); // a type this browser cannot show (HEIC, TIFF): the file's name is enough
      };
      img.src = url;
      img.alt = "";
      box.appendChild(img);
    }
    var name = document.createElement("span");
    name.className = "dropzone-file";
    name.textContent = count === 1 ? "Selected: " + file.name : "Selected: " + count + " files";
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

  /* Job page: poll the job's API URL while it runs and update the page in place. */

  var ACTIVE = ["queued", "running"];

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) {
      return "\u2014";
    }
    var total = Math.round(seconds);
    if (total < 60) {
      return total + " s";
    }
    var minutes = Math.floor(total / 60);
    if (minutes < 60) {
      return minutes + " min " + String(total % 60).padStart(2, "0") + " s";
    }
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  function formatRate(rate) {
    return rate ? rate.toFixed(1) + " images/s" : "\u2014";
  }

  function setField(root, name, text) {
    root.querySelectorAll('[data-job-field="' + name + '"]').forEach(function (node) {
      node.textContent = text;
    });
  }

  function renderFailures(root, job) {
    var body = root.querySelector("[data-job-failures]");
    if (!body) {
      return;
    }
    var rows = document.createDocumentFragment();
    job.failures.forEach(function (failure) {
      var row = document.createElement("tr");
      var name = document.createElement("td");
      name.className = "wrap";
      name.textContent = failure.name;
      var reason = document.createElement("td");
      reason.textContent = failure.reason;
      row.appendChild(name);
      row.appendChild(reason);
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
    var shown = job.failures.length;
    root.querySelector("[data-job-failures-table]").hidden = shown === 0;
    root.querySelector("[data-job-failures-empty]").hidden = shown > 0;
    root.querySelector("[data-job-failures-more]").hidden = job.failed <= shown;
    var download = root.querySelector("[data-job-failures-download]");
    if (download) {
      download.hidden = shown === 0;
    }
    setField(root, "failures-shown", String(shown));
  }

  function renderJob(root, job) {
    var known = job.total !== null && job.total !== undefined;
    var percent = job.total ? Math.floor((100 * job.processed) / job.total) : job.status === "done" ? 100 : 0;
    var badge = root.querySelector("[data-job-status]");
    badge.className = "status status-" + job.status;
    badge.setAttribute("data-job-status", job.status);
    setField(root, "status", job.status);
    setField(root, "processed", String(job.processed));
    setField(root, "total", known ? String(job.total) : "?");
    setField(root, "percent", String(percent));
    setField(root, "added", String(job.added));
    setField(root, "duplicates", String(job.duplicates));
    setField(root, "failed", String(job.failed));
    Object.keys(job.compared || {}).forEach(function (verdict) {
      setField(root, "compared-" + verdict, String(job.compared[verdict])); // a check's findings so far
    });
    setField(root, "rate", formatRate(job.rate));
    setField(root, "eta_seconds", formatDuration(job.eta_seconds));
    setField(root, "error", job.error || "");
    root.querySelector('[data-job-field="error"]').hidden = !job.error;
    var bar = root.querySelector("[data-job-progress]");
    if (known) {
      bar.max = Math.max(job.total, 1);
      bar.value = job.total ? job.processed : percent / 100;
      bar.textContent = percent + "%";
    } else {
      bar.removeAttribute("value"); // indeterminate until the files are counted
    }
    root.querySelectorAll("[data-job-show]").forEach(function (node) {
      node.hidden = node.getAttribute("data-job-show").split(" ").indexOf(job.status) === -1;
    });
    renderFailures(root, job);
  }

  function setupJobPage(root) {
    var url = root.getAttribute("data-job-url");
    var badge = root.querySelector("[data-job-status]");
    if (!url || !badge || typeof window.fetch !== "function") {
      return;
    }
    function poll() {
      window
        .fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (job) {
          renderJob(root, job);
          if (ACTIVE.indexOf(job.status) !== -1) {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () {
          window.setTimeout(poll, 5000); // server restarting or network blip: keep trying, gently
        });
    }
    if (ACTIVE.indexOf(badge.getAttribute("data-job-status")) !== -1) {
      window.setTimeout(poll, 1000);
    }
  }

  var SUGGESTED = 20; // album names asked for per keystroke pause

  function setupAlbumSuggestions(input) {
    // A library with more albums than a menu holds: ask the API for the names holding what was typed.
    var list = input.list;
    var url = input.getAttribute("data-album-suggest");
    if (!list || !url || typeof window.fetch !== "function") {
      return;
    }
    var first = Array.prototype.slice.call(list.children); // the top levels, rendered with the page
    var timer = null;
    var asked = 0;
    function show(options) {
      list.replaceChildren.apply(list, options);
    }
    function suggest() {
      var text = input.value.trim();
      var mine = ++asked;
      if (!text) {
        show(first);
        return;
      }
      var query = "?contains=" + encodeURIComponent(text) + "&limit=" + SUGGESTED;
      window
        .fetch(url + query, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (albums) {
          if (mine !== asked) {
            return; // a later keystroke asked again
          }
          show(
            albums.map(function (album) {
              var option = document.createElement("option");
              option.value = album.name;
              option.textContent = String(album.count);
              return option;
            })
          );
        })
        .catch(function () {
          // Offline or refused: the field still takes a typed name.
        });
    }
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(suggest, 150);
    });
  }

  // The server writes times in UTC; each is shown in the reader's own zone, with UTC in its tooltip
  // (to the second where the page asks, data-seconds: the activity log).
  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function zoneLabel(date) {
    var east = -date.getTimezoneOffset(); // minutes ahead of UTC, on that date (summer time counts)
    if (east === 0) {
      return "UTC";
    }
    var minutes = Math.abs(east) % 60;
    return "UTC" + (east > 0 ? "+" : "-") + Math.floor(Math.abs(east) / 60) + (minutes ? ":" + pad(minutes) : "");
  }

  function showLocalTime(node) {
    var date = new Date(node.getAttribute("datetime"));
    if (isNaN(date.getTime())) {
      return;
    }
    node.title = node.textContent.trim();
    node.textContent =
      date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) +
      (node.hasAttribute("data-seconds") ? ":" + pad(date.getSeconds()) : "") + " " + zoneLabel(date);
  }

  // The compare page's two images in one frame: each click shows the other, so what differs moves.
  function setupBlink(section) {
    var button = section.querySelector("[data-blink-button]");
    var images = section.querySelectorAll(".blink-frame img");
    if (!button || images.length !== 2) {
      return;
    }
    section.hidden = false;
    button.addEventListener("click", function () {
      var first = !images[0].hidden;
      images[0].hidden = first;
      images[1].hidden = !first;
      button.textContent = "Flip to " + images[first ? 0 : 1].getAttribute("data-name");
      button.setAttribute("aria-pressed", first ? "true" : "false");
    });
    // F flips, the arrow keys follow the previous and next links (data-key), unless typing.
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.altKey || event.ctrlKey || event.metaKey || (target && target.closest && target.closest("input, textarea, select"))) {
        return;
      }
      if (event.key === "f" || event.key === "F") {
        event.preventDefault();
        button.click();
        return;
      }
      var link = document.querySelector('a[data-key="' + event.key + '"]');
      if (link) {
        event.preventDefault();
        link.click();
      }
    });
  }

  function init() {
    document.querySelectorAll("time[datetime]").forEach(showLocalTime);
    document.querySelectorAll("input[data-album-suggest]").forEach(setupAlbumSuggestions);
    document.querySelectorAll(".dropzone").forEach(setupDropzone);
    document.querySelectorAll("[data-job-url]").forEach(setupJobPage);
    document.querySelectorAll("form").forEach(setupBusyForm);
    document.querySelectorAll("[data-blink]").forEach(setupBlink);
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
