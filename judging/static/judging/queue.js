// The judge's queue while trials are being prepared: reload once a trial becomes ready.
(() => {
  const config = JSON.parse(document.getElementById("queue-config").textContent);
  setInterval(async () => {
    const response = await fetch(config.url, {credentials: "same-origin"});
    if (response.ok && (await response.json()).ready.length !== config.ready) location.reload();
  }, 3000);
})();
