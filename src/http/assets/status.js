// Reloads a page that asks for it (data-refresh="SECONDS" on <body>) while it is visible,
// so the figures stay current. Nothing else on the page depends on JavaScript.
(function () {
  var seconds = Number(document.body.dataset.refresh || 0);
  if (seconds > 0) {
    setInterval(function () {
      if (document.visibilityState === "visible") {
        location.reload();
      }
    }, seconds * 1000);
  }
})();
