// The papers pages show the signup form in a frame (digest/web/papers.py says why): make
// the frame as tall as the form, so the page scrolls rather than the frame, also when
// the interest syntax opens. Without this script the frame keeps its CSS height.
(function () {
  var frame = window.frameElement;
  if (!frame) { return; }
  function fit() {
    frame.style.height = Math.ceil(document.body.getBoundingClientRect().height) + "px";
  }
  if (window.ResizeObserver) { new ResizeObserver(fit).observe(document.body); }
  window.addEventListener("load", fit);
})();
