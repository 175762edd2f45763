/* Two progressive enhancements; every page works without them.
   1. Timezone: the browser's IANA zone (Intl API) goes into empty/default timezone
      fields on signup, and is offered with a button on the settings page.
   2. Live preview: as a filter is typed, GET /preview.json?q=... and show the error
      (with its position) or the recent papers it matches. Text is inserted with
      textContent only, never as HTML. */
(function () {
  "use strict";

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setupTimezone(input) {
    var zone = browserZone();
    if (!zone || zone === input.value) return;
    if (input.dataset.tzGuess === "fill") {
      if (!input.value || input.value === "UTC") input.value = zone;
      return;
    }
    var button = el("button", "link tz-offer", "Use " + zone + " (this browser's timezone)");
    button.type = "button";
    button.addEventListener("click", function () {
      input.value = zone;
      input.focus();
      button.remove();
    });
    input.insertAdjacentElement("afterend", button);
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function renderError(box, text, error) {
    var wrap = el("div", "query-error live");
    var p = el("p", "error");
    p.appendChild(el("strong", "", error.message.charAt(0).toUpperCase() + error.message.slice(1)));
    p.appendChild(document.createTextNode(", at character " + error.column + ":"));
    var pre = el("pre", "query-mark");
    var code = el("code");
    var at = text.charAt(error.position);
    code.appendChild(document.createTextNode(text.slice(0, error.position)));
    code.appendChild(el("mark", "", at || "\u00a0"));
    code.appendChild(document.createTextNode(text.slice(error.position + 1)));
    pre.appendChild(code);
    wrap.appendChild(p);
    wrap.appendChild(pre);
    box.replaceChildren(wrap);
  }

  function renderResult(box, text, data) {
    var wrap = el("div", "preview-result");
    var p = el("p", "preview-count");
    p.appendChild(el("strong", "", String(data.count)));
    p.appendChild(document.createTextNode(
      (data.count === 1 ? " paper" : " papers") + " in the last " + data.days + " days matched "));
    p.appendChild(el("code", "", text));
    p.appendChild(document.createTextNode(data.count ? ":" : ". Try a broader filter."));
    wrap.appendChild(p);
    if (data.phrase && data.count) {
      // Plain words may be scattered over the abstract: say how many hold them together
      // (as the phrase or within a few words) and how many as the phrase itself.
      var together = el("p", "preview-phrase");
      if (data.together !== data.as_phrase) {
        together.appendChild(el("strong", "", String(data.together)));
        together.appendChild(document.createTextNode(" with the words together, listed first; "));
        together.appendChild(el("strong", "", String(data.as_phrase)));
        together.appendChild(document.createTextNode(" as a phrase"));
      } else {
        together.appendChild(el("strong", "", String(data.as_phrase)));
        together.appendChild(document.createTextNode(" as a phrase, listed first"));
      }
      together.appendChild(document.createTextNode(" — use quotes to keep only those: "));
      together.appendChild(el("code", "", data.phrase));
      wrap.appendChild(together);
    }
    (data.warnings || []).forEach(function (warning) {
      wrap.appendChild(el("p", "query-warning", warning));
    });
    if (data.papers.length) {
      var list = el("ol", "preview-list");
      data.papers.forEach(function (paper) {
        var li = el("li");
        var a = el("a", "", paper.title);
        a.href = paper.url;
        a.rel = "noopener noreferrer";
        li.appendChild(a);
        li.appendChild(el("span", "muted", " · " + plural(paper.upvotes, "upvote")));
        list.appendChild(li);
      });
      wrap.appendChild(list);
    }
    box.replaceChildren(wrap);
  }

  function setupPreview(field, url) {
    var box = document.querySelector('[data-preview-for="' + field.id + '"]');
    if (!box) return;
    var timer = null;
    var controller = null;
    var last = null;

    function currentText() {
      var value = field.value;
      if (field.dataset.preview !== "lines") return value.trim();
      // The line the caret is on, in a one-filter-per-line textarea.
      var pos = field.selectionStart || 0;
      var start = value.lastIndexOf("\n", pos - 1) + 1;
      var end = value.indexOf("\n", pos);
      return value.slice(start, end < 0 ? value.length : end).trim();
    }

    function run() {
      var text = currentText();
      if (text === last) return;
      last = text;
      if (controller) controller.abort();
      if (!text) {
        box.replaceChildren();
        return;
      }
      controller = new AbortController();
      fetch(url + "?q=" + encodeURIComponent(text), {
        signal: controller.signal,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (!data) return;
          if (data.ok) renderResult(box, text, data);
          else renderError(box, text, data.error);
        })
        .catch(function () {});
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(run, 250);
      // An error the server rendered for the previous text is stale now.
      // A filter's row holds its error (the rows share one form: see manage.html).
      var form = field.closest(".filter-row") || field.form;
      if (form) {
        form.querySelectorAll(".query-error:not(.live)").forEach(function (node) {
          node.hidden = true;
        });
      }
    }

    field.addEventListener("input", schedule);
    if (field.dataset.preview === "lines") {
      field.addEventListener("click", schedule);
      field.addEventListener("keyup", function (event) {
        if (event.key.indexOf("Arrow") === 0) schedule();
      });
    }
  }

  // A weekday only means something for weekly digests: hide its field for daily ones
  // (without JavaScript it stays, labelled "weekly digests").
  function setupWeekday(form) {
    var weekday = form.querySelector("select[name=weekday]");
    var radios = form.querySelectorAll("input[name=frequency]");
    if (!weekday || !radios.length) return;
    var field = weekday.closest(".field");
    function sync() {
      var checked = form.querySelector("input[name=frequency]:checked");
      field.hidden = !!checked && checked.value === "daily";
    }
    radios.forEach(function (radio) { radio.addEventListener("change", sync); });
    sync();
  }

  // Browsers skip autofocus when the address has a #fragment (the row a form came back
  // to): focus the field to fix once the page has settled there.
  window.addEventListener("load", function () {
    var field = document.querySelector("[autofocus]");
    if (field && document.activeElement !== field) field.focus({ preventScroll: true });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-tz-guess]").forEach(setupTimezone);
    document.querySelectorAll("form").forEach(setupWeekday);
    var url = document.body.dataset.previewUrl;
    if (url && window.fetch) {
      document.querySelectorAll("[data-preview]").forEach(function (field) {
        setupPreview(field, url);
      });
    }
  });
})();
