// Preselect the visitor's own time zone on a fresh signup form (the server's default
// stays if the browser does not say, or names a zone the list does not have).
document.addEventListener("DOMContentLoaded", function () {
  var select = document.querySelector("select[data-detect='1']");
  if (!select || !window.Intl) { return; }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && select.querySelector("option[value='" + zone.replace(/'/g, "") + "']")) {
    select.value = zone;
  }
});
