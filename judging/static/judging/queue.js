// The judge's queue while trials are being prepared: reload once the ready trials (or their order) change,
// so that the trial offered next is always the first one in the planned order.
(() => {
  const config = JSON.parse(document.getElementById("queue-config").textContent);
  const shown = JSON.stringify(config.ready);
  setInterval(async () => {
    const response = await fetch(config.url, {credentials: "same-origin"});
    if (response.ok && JSON.stringify((await response.json()).ready) !== shown) location.reload();
  }, 3000);
})();
