// The offer editor, enhanced: show only the fields of the pricing model, commission kind and
// destination chosen, and the minimum price of the currency chosen. Without this script every
// field shows and the server ignores those that do not apply, as the page says.
(function () {
  function checkedValue(form, name) {
    var picked = form.querySelector("input[name='" + name + "']:checked");
    return picked ? picked.value : "";
  }
  function fieldOf(input) { return input.closest(".field") || input; }

  document.querySelectorAll("form[data-pricing-form]").forEach(function (form) {
    var groups = form.querySelectorAll("[data-for-pricing]");
    function update() {
      var pricing = checkedValue(form, "pricing");
      groups.forEach(function (group) {
        group.hidden = group.getAttribute("data-for-pricing").split(" ").indexOf(pricing) === -1;
      });
      var access = checkedValue(form, "access");
      var days = form.querySelector("[name='access_days']");
      if (days) fieldOf(days).hidden = access !== "days";
    }
    form.addEventListener("change", update);
    update();

    var minimums = form.getAttribute("data-minimums");
    var currency = form.querySelector("select[name='currency']");
    var hint = document.getElementById("h-amount");
    if (minimums && currency && hint) {
      var table = JSON.parse(minimums);
      currency.addEventListener("change", function () {
        var code = currency.value;
        hint.textContent = "In major units of the currency, for example 49.00. At least " + (table[code] || "Stripe's minimum") +
          " (Stripe's smallest charge in " + code + ").";
      });
    }
  });

  document.querySelectorAll("form[data-commission-form]").forEach(function (form) {
    var inputs = form.querySelectorAll("[data-commission]");
    var months = form.querySelector("[name='resell_earn_months']");
    function update() {
      var kind = checkedValue(form, "commission_kind") || "percent";
      inputs.forEach(function (input) { fieldOf(input).hidden = input.getAttribute("data-commission") !== kind; });
      if (months) fieldOf(months).hidden = checkedValue(form, "resell_earns") !== "months";
    }
    form.addEventListener("change", update);
    update();
  });

  document.querySelectorAll("form[data-destination-form]").forEach(function (form) {
    var toggle = form.querySelector("[name='custom_link']");
    var url = form.querySelector("[name='destination_url']");
    if (!toggle || !url) return;
    function update() { fieldOf(url).hidden = !toggle.checked; }
    toggle.addEventListener("change", update);
    update();
  });
})();
