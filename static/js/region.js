/* Search with a region of the photo: draw a box with the mouse (or a finger), or move and resize it
   with the keyboard. The box fills the form's x, y, width and height fields, in pixels of the
   photo; without this file those fields work on their own. On the results page the photo searched
   is put back into the form (kept in this browser's IndexedDB), so another region can be tried. */
(function () {
  "use strict";

  var FIELDS = ["x", "y", "width", "height"];
  var MIN_SIDE = 8;

  function clamp(value, low, high) {
    return Math.min(Math.max(value, low), high);
  }

  function setupRegion(form) {
    var details = form.querySelector("details.region");
    var editor = form.querySelector(".region-editor");
    var input = form.querySelector('input[type="file"][name="image"]');
    if (!details || !editor || !input) {
      return;
    }
    var image = editor.querySelector(".region-image");
    var drawn = editor.querySelector(".region-box");
    var fields = {};
    FIELDS.forEach(function (name) {
      fields[name] = form.querySelector('input[name="' + name + '"]');
    });
    var url = null;
    var box = null; // in pixels of the photo
    var drag = null;
    var declared = null; // the photo's size, when the server drew it (see shownByServer)
    var shows = 0; // one more for each photo shown: an answer about an earlier one is dropped
    var unshown = null; // the photo chosen, while this browser cannot show it and the server has not been asked

    function size() {
      if (declared) {
        return declared;
      }
      return { w: image.naturalWidth || 0, h: image.naturalHeight || 0 };
    }

    function readFields() {
      var values = FIELDS.map(function (name) {
        return fields[name].value === "" ? NaN : Number(fields[name].value);
      });
      box = values.some(isNaN) ? null : { x: values[0], y: values[1], width: values[2], height: values[3] };
    }

    function draw() {
      var s = size();
      if (!box || !s.w) {
        drawn.hidden = true;
        return;
      }
      drawn.hidden = false;
      drawn.style.left = (100 * box.x) / s.w + "%";
      drawn.style.top = (100 * box.y) / s.h + "%";
      drawn.style.width = (100 * box.width) / s.w + "%";
      drawn.style.height = (100 * box.height) / s.h + "%";
    }

    function write() {
      FIELDS.forEach(function (name) {
        fields[name].value = box ? String(Math.round(box[name])) : "";
      });
      draw();
    }

    function point(event) {
      var rect = image.getBoundingClientRect();
      var s = size();
      return {
        x: clamp(((event.clientX - rect.left) * s.w) / rect.width, 0, s.w),
        y: clamp(((event.clientY - rect.top) * s.h) / rect.height, 0, s.h),
      };
    }

    function fromCorners(a, b) {
      var s = size();
      var x = Math.floor(Math.min(a.x, b.x));
      var y = Math.floor(Math.min(a.y, b.y));
      var width = Math.max(Math.ceil(Math.max(a.x, b.x)) - x, MIN_SIDE);
      var height = Math.max(Math.ceil(Math.max(a.y, b.y)) - y, MIN_SIDE);
      width = Math.min(width, s.w);
      height = Math.min(height, s.h);
      return { x: clamp(x, 0, s.w - width), y: clamp(y, 0, s.h - height), width: width, height: height };
    }

    editor.addEventListener("pointerdown", function (event) {
      if (!size().w) {
        return;
      }
      event.preventDefault();
      drag = point(event);
      editor.focus({ preventScroll: true });
      editor.setPointerCapture(event.pointerId);
      box = fromCorners(drag, drag);
      write();
    });
    editor.addEventListener("pointermove", function (event) {
      if (drag) {
        box = fromCorners(drag, point(event));
        write();
      }
    });
    function endDrag() {
      drag = null;
    }
    editor.addEventListener("pointerup", endDrag);
    editor.addEventListener("pointercancel", endDrag);

    editor.addEventListener("keydown", function (event) {
      var s = size();
      if (!s.w) {
        return;
      }
      if (event.key === "Delete" || event.key === "Backspace" || event.key === "Escape") {
        if (box) {
          event.preventDefault();
          box = null;
          write();
        }
        return;
      }
      var moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
      var move = moves[event.key];
      if (!move) {
        return;
      }
      event.preventDefault();
      if (!box) {
        // The first key puts a box of half the photo in its middle.
        box = { x: Math.round(s.w / 4), y: Math.round(s.h / 4), width: Math.round(s.w / 2), height: Math.round(s.h / 2) };
        write();
        return;
      }
      var step = Math.max(1, Math.round(Math.max(s.w, s.h) / 50));
      if (event.shiftKey) {
        box.width = clamp(box.width + move[0] * step, MIN_SIDE, s.w - box.x);
        box.height = clamp(box.height + move[1] * step, MIN_SIDE, s.h - box.y);
      } else {
        box.x = clamp(box.x + move[0] * step, 0, s.w - box.width);
        box.y = clamp(box.y + move[1] * step, 0, s.h - box.height);
      }
      write();
    });

    FIELDS.forEach(function (name) {
      fields[name].addEventListener("input", function () {
        readFields();
        draw();
      });
    });
    var clear = form.querySelector(".region-clear");
    if (clear) {
      clear.addEventListener("click", function () {
        box = null;
        write();
      });
    }

    function shown() {
      editor.hidden = false;
      readFields();
      draw();
    }

    function show(file) {
      if (url) {
        URL.revokeObjectURL(url);
        url = null;
      }
      declared = null;
      unshown = null;
      editor.hidden = true;
      shows += 1;
      if (!file || (file.type.indexOf("image/") !== 0 && !notShownEverywhere(file))) {
        return;
      }
      url = URL.createObjectURL(file);
      image.onload = shown;
      image.onerror = function () {
        if (!notShownEverywhere(file)) {
          return; // a JPEG or PNG this browser cannot show is damaged: the server would refuse it too
        }
        unshown = file;
        if (details.open) {
          shownByServer(file);
        }
      };
      image.src = url;
    }

    // HEIC and TIFF: only Safari shows them.
    function notShownEverywhere(file) {
      return /^image\/(heic|heif|tiff)$/.test(file.type) || /\.(heic|heif|tiff?)$/i.test(file.name);
    }
    // The server is asked only once the region's section is open: most searches use no region.
    details.addEventListener("toggle", function () {
      if (details.open && unshown && editor.hidden) {
        shownByServer(unshown);
      }
    });

    // A photo this browser cannot show (a HEIC outside Safari): the server sends a JPEG of it and
    // its size in pixels, in which the box is drawn.
    function shownByServer(file) {
      var asked = shows;
      unshown = null; // asked once
      var address = form.getAttribute("data-picture-url");
      var token = form.querySelector('input[name="csrf_token"]');
      if (!address || !window.fetch || !window.FormData) {
        return;
      }
      var body = new FormData();
      body.append("image", file);
      if (token) {
        body.append("csrf_token", token.value);
      }
      fetch(address, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("no picture");
          }
          var w = Number(response.headers.get("X-Image-Width"));
          var h = Number(response.headers.get("X-Image-Height"));
          return response.blob().then(function (blob) {
            return { blob: blob, w: w, h: h };
          });
        })
        .then(function (made) {
          if (asked !== shows || !made.w || !made.h) {
            return; // another photo was chosen meanwhile
          }
          if (url) {
            URL.revokeObjectURL(url);
          }
          url = URL.createObjectURL(made.blob);
          declared = { w: made.w, h: made.h };
          image.onerror = null;
          image.onload = shown;
          image.src = url;
        })
        .catch(function () {
          /* not an image the server reads either: the pixel fields still work */
        });
    }

    // The photo is kept as soon as it is chosen, not at submit: a page being left may end before
    // IndexedDB has written it, and the results page would have nothing to put back.
    var saving = null;
    input.addEventListener("change", function () {
      if (!restoring) {
        box = null; // another photo: the old region means nothing on it
        write();
        saving = remember(input.files && input.files[0]);
      }
      show(input.files && input.files[0]);
    });
    var restoring = false;
    var deferred = false; // a submission waits for the photo to be kept
    form.addEventListener("submit", function (event) {
      if (deferred) {
        event.preventDefault(); // it goes once the photo is kept
        return;
      }
      var pending = saving;
      if (!pending || pending.done) {
        return;
      }
      // Chosen a moment ago (a pasted photo submits at once): send the form once it is kept, or
      // after two seconds whatever happened.
      event.preventDefault();
      deferred = true;
      function send() {
        if (deferred) {
          deferred = false;
          form.submit();
        }
      }
      pending.then(send, send);
      window.setTimeout(send, 2000);
    });
    if (form.hasAttribute("data-restore-query")) {
      recall(function (file) {
        if (!file || (input.files && input.files.length) || !window.DataTransfer) {
          return;
        }
        try {
          var transfer = new DataTransfer();
          transfer.items.add(file);
          input.files = transfer.files;
        } catch (err) {
          return; // the person chooses the file again
        }
        restoring = true;
        input.dispatchEvent(new Event("change", { bubbles: true }));
        restoring = false;
      });
    } else if (input.files && input.files.length) {
      show(input.files[0]); // e.g. after back navigation
    }
  }

  // The photo last searched, kept in IndexedDB (sessionStorage holds strings of a few MB only).
  function database(callback, failed) {
    var fail = failed || function () {};
    if (!window.indexedDB) {
      fail();
      return;
    }
    var request;
    try {
      request = window.indexedDB.open("reverse-image-search", 1);
    } catch (err) {
      fail();
      return;
    }
    request.onupgradeneeded = function () {
      request.result.createObjectStore("query");
    };
    request.onsuccess = function () {
      callback(request.result);
    };
    request.onerror = fail;
    request.onblocked = fail;
  }

  // Keep a file as the photo last searched; return a promise settled once it is written (or
  // cannot be), with ``done`` set then. Null without a file or IndexedDB.
  function remember(file) {
    if (!file || !window.indexedDB || typeof Promise === "undefined") {
      return null;
    }
    var kept = new Promise(function (resolve) {
      database(function (db) {
        try {
          var transaction = db.transaction("query", "readwrite");
          transaction.objectStore("query").put(file, "last");
          transaction.oncomplete = resolve;
          transaction.onerror = resolve;
          transaction.onabort = resolve;
        } catch (err) {
          resolve(); /* private browsing or a full disk: nothing to put back later */
        }
      }, resolve);
    });
    kept.then(function () {
      kept.done = true;
    });
    return kept;
  }

  function recall(callback) {
    database(function (db) {
      try {
        var request = db.transaction("query").objectStore("query").get("last");
        request.onsuccess = function () {
          callback(request.result || null);
        };
      } catch (err) {
        callback(null);
      }
    });
  }

  function setupAutosubmit(select) {
    select.addEventListener("change", function () {
      select.form.submit();
    });
  }

  function init() {
    document.querySelectorAll("form.search-form").forEach(setupRegion);
    document.querySelectorAll("select[data-autosubmit]").forEach(setupAutosubmit);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
