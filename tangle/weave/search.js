// tangle/weave/search.js: the docs site's full-text search (notes/docs-site.org).
// Runs on search.html only: fetches search-index.json (one row per note
// section: [url, note title, heading, text]) and lists the sections that
// contain every word of the query.  Pages never need this script to be read.
(function () {
  "use strict";
  var results = document.getElementById("results");
  if (!results) return;
  var input = document.getElementById("q");
  var status = document.getElementById("search-status");
  var index = null;

  function escapeHtml(s) {
    return s.replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  function escapeRegExp(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  // A window of text around the first hit, with every word marked.
  function snippet(text, words) {
    var lower = text.toLowerCase();
    var at = lower.indexOf(words[0]);
    var start = Math.max(0, at - 80);
    var piece = (start > 0 ? "\u2026" : "") + text.slice(start, start + 240) + (text.length > start + 240 ? "\u2026" : "");
    var marked = escapeHtml(piece);
    var re = new RegExp("(" + words.map(function (w) { return escapeRegExp(escapeHtml(w)); }).join("|") + ")", "gi");
    return marked.replace(re, "<mark>$1</mark>");
  }

  function search(query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    results.innerHTML = "";
    if (words.length === 0) { status.textContent = "Type a word from the notes."; return; }
    var hits = [];
    index.forEach(function (row) {
      var hay = (row[1] + " " + row[2] + " " + row[3]).toLowerCase();
      if (!words.every(function (w) { return hay.indexOf(w) >= 0; })) return;
      var score = 0;
      words.forEach(function (w) {
        if (row[2].toLowerCase().indexOf(w) >= 0) score += 10;
        if (row[1].toLowerCase().indexOf(w) >= 0) score += 5;
        score += Math.min(hay.split(w).length - 1, 10);
      });
      hits.push({ row: row, score: score });
    });
    hits.sort(function (a, b) { return b.score - a.score; });
    status.textContent = hits.length + (hits.length === 1 ? " section matches" : " sections match") +
      " \u201c" + query + "\u201d.";
    hits.slice(0, 60).forEach(function (h) {
      var li = document.createElement("li");
      var title = escapeHtml(h.row[1]) + (h.row[2] ? " \u203a " + escapeHtml(h.row[2]) : "");
      li.innerHTML = '<a class="where" href="' + h.row[0] + '">' + title + "</a>" +
        '<div class="snippet">' + snippet(h.row[3] || h.row[2], words) + "</div>";
      results.appendChild(li);
    });
  }

  var params = new URLSearchParams(window.location.search);
  var initial = params.get("q") || "";
  input.value = initial;
  status.textContent = "Loading the index\u2026";
  fetch("search-index.json").then(function (r) { return r.json(); }).then(function (data) {
    index = data;
    search(initial);
    input.addEventListener("input", function () {
      var q = input.value;
      history.replaceState(null, "", "?q=" + encodeURIComponent(q));
      search(q);
    });
  }).catch(function (e) { status.textContent = "Could not load the search index: " + e; });
})();
