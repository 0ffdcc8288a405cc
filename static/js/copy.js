// A "Copy" button for <button data-copy="#element">: shown only where the clipboard
// works (secure contexts); it copies the element's text and says so.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = document.querySelector(button.dataset.copy).textContent.trim();
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }, function () { button.textContent = "Select and copy it by hand"; });
  });
});
