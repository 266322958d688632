// The browser's one money formatter: the same rule as billing/money.py format_usd (the tests run
// both on one table of values). Amounts arrive as integer micro-dollars.
// - zero, and a cent or more: dollars and cents, halves away from zero, thousands separated;
// - under a cent: every micro-dollar digit, trailing zeros dropped ("$0.001602").
// Use: Yardstick.money.usd(1602) -> "$0.001602". Integer arithmetic only: no float rounding.
(function (root) {
  "use strict";
  const CENT = 10000; // micro-dollars

  function groupThousands(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function usd(micros) {
    if (micros === null || micros === undefined || micros === "") return "—";
    let n = Math.round(Number(micros));
    if (!Number.isFinite(n)) return "—";
    const sign = n < 0 ? "-" : "";
    n = Math.abs(n);
    if (n === 0 || n >= CENT) {
      const cents = Math.floor((n + CENT / 2) / CENT); // half away from zero
      const whole = Math.floor(cents / 100);
      return sign + "$" + groupThousands(String(whole)) + "." + String(cents % 100).padStart(2, "0");
    }
    const decimals = String(n).padStart(6, "0").replace(/0+$/, "");
    return sign + "$0." + decimals;
  }

  const api = { usd: usd };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  if (root) {
    root.Yardstick = root.Yardstick || {};
    root.Yardstick.money = api;
  }
})(typeof window !== "undefined" ? window : null);
