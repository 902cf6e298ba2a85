// The judge's queue while trials are being prepared: reload once the ready trials (or their order) change,
// so that the trial offered next is always the first one in the planned order; meanwhile keep the estimate of
// when the next one is ready current (as text: it is the server's words, never markup).
(() => {
  const config = JSON.parse(document.getElementById("queue-config").textContent);
  const shown = JSON.stringify(config.ready);
  const estimate = document.getElementById("readiness");
  setInterval(async () => {
    const response = await fetch(config.url, {credentials: "same-origin"});
    if (!response.ok) return;
    const queue = await response.json();
    if (JSON.stringify(queue.ready) !== shown) location.reload();
    else if (estimate && queue.readiness) estimate.textContent = queue.readiness;
  }, 3000);
})();
