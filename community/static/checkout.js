// Checkout page: show the price with the typed discount code applied (the server decides the
// real amount when the form is sent; this is only a preview).
(function () {
  var form = document.getElementById("checkout-form");
  var input = document.getElementById("discount_code");
  var out = document.getElementById("quote");
  if (!form || !input || !out) return;
  var timer = null;
  function show(text, isError) { out.textContent = text; out.className = isError ? "error" : "notice"; }
  function money(minor, currency, digits) { return (minor / Math.pow(10, digits)).toFixed(digits) + " " + currency; }
  function update() {
    var code = input.value.trim();
    if (!code) { show("", false); return; }
    var email = form.querySelector("input[name=email]");
    var csrf = form.querySelector("input[name=_csrf_token]");
    // The offer's own origin answers (this page cannot reach the platform's API).
    fetch(window.location.pathname.replace(/\/checkout\/?$/, "/quote"), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.value : "" },
      body: JSON.stringify({ code: code, email: email && email.value ? email.value : null }),
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { show(res.body.detail || "This code cannot be used.", true); return; }
        var q = res.body;
        var digits = Number(form.dataset.exponent) || 0;
        show("With " + q.code + ": " + (q.amount_due === 0 ? "free" : money(q.amount_due, q.currency, digits)) +
             " (you save " + money(q.discount_amount, q.currency, digits) + ")", false);
      })
      .catch(function () { show("", false); });
  }
  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 400); });
  if (input.value) update();
})();
