// Copy buttons: a text field marked data-copy="Button label" gets a button beside it that copies
// the field's value, and says so in the element named by data-copied (a status region).
// Without JavaScript the field stays what it is: read-only text to select and copy by hand.
(function () {
  var fields = document.querySelectorAll("input[data-copy]");
  Array.prototype.forEach.call(fields, function (field) {
    var status = field.dataset.copied ? document.querySelector(field.dataset.copied) : null;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary copy";
    button.textContent = field.dataset.copy || "Copy";
    field.insertAdjacentElement("afterend", button);

    function say(text) { if (status) status.textContent = text; }
    function bySelection() {
      field.focus();
      field.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      say(copied ? "Copied." : "Selected: press Ctrl+C (or Cmd+C) to copy.");
    }
    button.addEventListener("click", function () {
      say("");
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { say("Copied."); }, bySelection);
      } else {
        bySelection();
      }
    });
    field.addEventListener("focus", function () { field.select(); });
  });
})();
