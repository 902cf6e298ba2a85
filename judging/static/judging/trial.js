// The judge's trial page: what htmx does not do. The live parts of the page are server-rendered partials that
// htmx morphs into #live-region (see templates/judging/partials/live.html); this file keeps the sliders' outputs
// and the score preview up to date, sends the heartbeats that active time is counted from, and shows refused or
// failed moves. It is configured by the page's "trial-config" JSON and writes text only with textContent: model
// and judge text is untrusted.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("trial-config").textContent);
  const el = (id) => document.getElementById(id);

  // ---- Sliders and the score preview ------------------------------------------------------------------------
  const ruleNames = {log: "log score", quadratic: "quadratic score", spherical: "spherical score"};

  // The probabilities have no default (templates/judging/partials/probability.html): the posted field is the number
  // box beside each slider, empty and required until the judge moves the slider or types a number. What the box
  // holds survives live updates (a morph changes attributes, not values), so it is read from the box every time.
  const probabilityFields = ["probability", "leaning"];  // the sliders' ids; each box's id is the slider's + "-value"

  // The probability given, or null while it is not set (or not a valid one: the browser refuses those too).
  function probabilityOf(id) {
    const box = el(id + "-value");
    return box && box.value !== "" && box.validity.valid ? parseFloat(box.value) : null;
  }

  function showSliderValue(id) {
    const slider = el(id), out = el(id + "-out"), p = probabilityOf(id);
    if (!slider || !out) return;
    if (p !== null) slider.value = p;
    out.textContent = p === null ? "not set" : Math.round(p * 100) + "%";
  }

  // The score the judge would get under each outcome, looked up in the server's table, where it is already written
  // as shown (judging.scoring.display). The table is part of the verdict partial because a live debate's round
  // penalty grows with each round.
  function showScores() {
    const out = el("score-preview"), data = el("scoring-data"), p = probabilityOf("probability");
    if (!out || !data) return;
    const scoring = JSON.parse(data.textContent);
    const rule = "Scoring (" + ruleNames[scoring.rule] + (scoring.round_penalty ? ", " + scoring.round_penalty +
      " per round × " + scoring.rounds + " rounds" : "") + "): ";
    if (p === null) {
      out.textContent = rule + "move the slider to see what you would score if your answer is right and if wrong.";
      return;
    }
    const [right, wrong] = scoring.table[p.toFixed(2)];
    out.textContent = rule + "if your answer is right you score " + right + "; if it is wrong, " + wrong + ".";
  }

  // Listeners sit on the document: the live updates may replace the elements they are about.
  document.addEventListener("input", (event) => {
    const id = event.target.id.replace(/-value$/, "");
    if (!probabilityFields.includes(id)) return;
    if (event.target.id === id) el(id + "-value").value = event.target.value;  // the slider sets the box
    el(id + "-error").hidden = true;
    showSliderValue(id);
    if (id === "probability") showScores();
  });

  // The browser refuses a verdict or leaning without a probability (the box is required); this says why beside the
  // slider. "invalid" does not bubble, hence the capture phase.
  document.addEventListener("invalid", (event) => {
    const id = event.target.id.replace(/-value$/, "");
    if (!probabilityFields.includes(id) || !event.target.validity.valueMissing) return;
    const error = el(id + "-error");
    error.textContent = "Move the slider to say how likely the answer you chose is to be correct: it has no default.";
    error.hidden = false;
  }, true);

  // ---- Active time ------------------------------------------------------------------------------------------
  // Counted on the server (judging.services.active_time_beat), so that a reload, a refused verdict or a return
  // visit loses at most one beat. While the tab is visible and the judge has done something (moved, typed,
  // scrolled, selected, touched) within config.idle_seconds, the page sends a beat every config.beat_seconds, and
  // the server adds the time since the previous beat by its own clock. A "fresh" beat (the page just loaded or
  // shown again, the judge back from idling) adds nothing: it only starts the count again. The verdict's own
  // submission counts as the last beat. The server decides the round each beat's time belongs to.
  const BEAT_MS = config.beat_seconds * 1000, IDLE_MS = config.idle_seconds * 1000;
  // Tells this page load's beats from another tab's or an earlier load's (crypto.randomUUID needs HTTPS).
  const pageId = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  let beatSeq = 0, counting = false, lastActivity = performance.now();

  function beat(fresh) {
    beatSeq += 1;
    // The CSRF token of the page's forms (an unjudged trial's page always has the verdict form).
    const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    const body = new URLSearchParams({page: pageId, seq: String(beatSeq), fresh: fresh ? "1" : "0",
      csrfmiddlewaretoken: csrf});
    // keepalive: the beat sent as the page is left (a reload, a link) still arrives. A lost or refused beat
    // costs at most one interval of time; the judge is never told.
    fetch(config.beat_url, {method: "POST", body, keepalive: true, credentials: "same-origin"}).catch(() => {});
  }

  const active = () => !document.hidden && performance.now() - lastActivity < IDLE_MS;

  // Start counting (a fresh beat) unless already counting; stop counting, with a last beat for the time until now.
  function startCounting() {
    if (counting || !config.beat_url || !active()) return;
    counting = true;
    beat(true);
  }

  function stopCounting(lastBeat) {
    if (counting && lastBeat) beat(false);
    counting = false;
  }

  function acted() {
    lastActivity = performance.now();
    startCounting();
  }

  for (const type of ["pointermove", "pointerdown", "keydown", "scroll", "wheel", "touchstart", "input",
    "selectionchange"]) {
    addEventListener(type, acted, {passive: true, capture: true});
  }

  setInterval(() => {
    // Idle past the window: the time since the last beat was not all active, so it is not sent (at most one
    // interval of reading is lost, out of the window's minutes).
    if (!active()) stopCounting(false);
    else if (counting) beat(false);
  }, BEAT_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      stopCounting(true);  // the time until the tab was hidden counts
    } else {
      acted();  // coming back to the tab is the judge acting
    }
  });
  addEventListener("pagehide", () => stopCounting(true));
  addEventListener("pageshow", (event) => { if (event.persisted) acted(); });  // back from the back-forward cache
  document.addEventListener("submit", (event) => {
    // The server counts the verdict's submission as the last beat: no beat as the page unloads.
    if (event.target.id === "verdict-form") counting = false;
  });
  acted();  // opening the page is the judge acting

  // The sliders' outputs and the score preview, again after each live update: a morph resets the outputs' text
  // to the server's default, not to where the judge moved the slider, and the scoring table may have changed.
  function showSliders() {
    for (const id of probabilityFields) showSliderValue(id);
    showScores();
  }

  showSliders();
  document.addEventListener("htmx:after:swap", showSliders);

  // ---- The round's elapsed seconds --------------------------------------------------------------------------
  // The server renders them (data-seconds) but leaves them out of the live tag, so a poll that would change only
  // them is answered 304 (judging/live_tag.py): the page counts on from the seconds it was last given.
  // Only a render (the page, or an update swapped in) gives new seconds: count from its. htmx runs its swap step,
  // and fires after:swap, for a 304 too, with nothing to swap (swap "none"): that gives no new seconds.
  let secondsGiven = null, givenAt = Date.now();
  document.addEventListener("htmx:after:swap", (event) => {
    if (event.detail.ctx.swap === "none") return;
    secondsGiven = null;
    givenAt = Date.now();
  });
  setInterval(() => {
    const out = el("round-seconds");
    if (!out) return;
    if (secondsGiven === null) secondsGiven = parseInt(out.dataset.seconds, 10);
    out.textContent = String(secondsGiven + Math.floor((Date.now() - givenAt) / 1000));
  }, 250);

  // ---- Live news: the characters the speeches being written have grown by ------------------------------------
  // A poll whose page lacks only those is answered with them as JSON (views.trial_live), and a pushed page is sent
  // them as an event (the stream, below): appended here as text (never parsed as HTML: model output is untrusted),
  // with line breaks where the server's render puts them, or, where they finish a quote, the whole speech in text
  // and marked quotes; htmx swaps nothing (its ptag extension has already taken a poll reply's tag). Should the page
  // lack the speech, it asks for the whole partials (X-Live-Full on the next poll; a pushed page fetches them).
  let wholeNext = false;
  const isPoll = (ctx) => ctx?.sourceElement?.id === "live-status";
  document.addEventListener("htmx:config:request", (event) => {
    if (wholeNext && isPoll(event.detail.ctx)) {
      event.detail.ctx.request.headers["X-Live-Full"] = "1";
      wholeNext = false;
    }
  });

  const appendText = (speech, text) => {
    text.replace(/\r\n?/g, "\n").split("\n").forEach((line, i) => {
      if (i) speech.append(document.createElement("br"));
      if (line) speech.append(line);  // a text node
    });
  };

  function applyNews(news) {
    const speechAt = (index) => {
      const speech = document.querySelector(`[data-writing="${Number(index)}"]`);
      if (!speech) wholeNext = true;
      return speech;
    };
    for (const {index, text} of news.append) {
      const speech = speechAt(index);
      if (speech) appendText(speech, text);
    }
    // A speech whose new characters finished a quote comes whole, as the render's segments: plain text, and quotes
    // marked as transcript.html marks them (their text as text, never as HTML).
    for (const {index, segments} of news.rewrite || []) {
      const speech = speechAt(index);
      if (!speech) continue;
      speech.replaceChildren();
      for (const {kind, text, title} of segments) {
        if (kind === "text") {
          appendText(speech, text);
          continue;
        }
        const quote = document.createElement("q");
        quote.className = `quote ${kind}`;
        quote.title = title;
        quote.textContent = text;
        speech.append(quote);
      }
    }
    for (const {index, chars} of news.chars) {
      const out = document.querySelector(`[data-chars="${Number(index)}"]`);
      if (out) out.textContent = String(chars);
      else wholeNext = true;
    }
  }

  document.addEventListener("htmx:after:request", (event) => {
    const ctx = event.detail.ctx;
    if (!isPoll(ctx) || ctx.response.status !== 200) return;
    if (!(ctx.response.headers.get("content-type") || "").startsWith("application/json")) return;
    event.preventDefault();  // no swap: the reply is not HTML
    try {
      applyNews(JSON.parse(ctx.text));
    } catch {
      wholeNext = true;
    }
  });

  // ---- Pushed updates: the stream a page follows where the server pushes (judging/live_stream.py) -------------
  // While the debaters speak, #live-status names the stream (data-stream) instead of polling. Its events are what
  // a poll would have been answered: "news" (applied as above), "render" (the live partials, morphed in as a poll's
  // reply is, so the judge's selection survives), "end" (the page fetches itself the ordinary way). Each event's id
  // is the tag of the page it brings; the browser reconnects by itself with the last one (Last-Event-ID). A stream
  // that cannot be had (refused, logged out, a server that does not push) is tried again every 3 s, the partials
  // fetched each time.
  let stream = null, streamUrl = "", pageTag = el("live-status")?.getAttribute("hx-ptag") || "";
  let fallback = null;

  function follow() {
    const url = el("live-status")?.dataset.stream || "";
    if (stream && url === streamUrl) return;  // following it already
    if (stream) stream.close();
    stream = null;
    streamUrl = url;
    clearTimeout(fallback);
    if (!url) return;
    stream = new EventSource(url + "?tag=" + encodeURIComponent(pageTag));
    const source = stream;
    stream.addEventListener("news", (message) => {
      pageTag = message.lastEventId;
      try {
        applyNews(JSON.parse(message.data));
      } catch {
        wholeNext = true;
      }
      if (wholeNext) refresh();
    });
    stream.addEventListener("render", (message) => {
      let html;
      try {
        html = JSON.parse(message.data).html;
      } catch {
        refresh();  // not ours: the page fetches itself
        return;
      }
      pageTag = message.lastEventId;
      htmx.swap({sourceElement: el("live-status"), target: el("live-region"), swap: "innerMorph", text: html,
        transition: false}).then(follow);
    });
    stream.addEventListener("end", () => {
      source.close();
      if (source === stream) stream = null;
      refresh();  // its reply names a stream again if there is one to follow
    });
    stream.addEventListener("error", () => {
      // Broken: the browser reconnects by itself. Refused (an error reply): it gives up; so do we, for a while.
      if (source.readyState !== EventSource.CLOSED || source !== stream) return;
      stream = null;
      fallback = setTimeout(() => {
        refresh();  // the page brought up to date the ordinary way, and the stream tried again
        streamUrl = "";
        follow();
      }, 3000);
    });
  }

  // The partials fetched the ordinary way (one request): the reply's tag becomes the page's, and the page then
  // follows the stream it names from that tag.
  function refresh() {
    wholeNext = true;
    htmx.trigger(el("live-status"), "live-refresh");
  }

  document.addEventListener("htmx:after:request", (event) => {
    const tag = event.detail.ctx.response?.headers?.get?.("HX-PTag");
    if (!tag || tag === pageTag) return;
    pageTag = tag;  // a move's or a refresh's reply: the stream must start again from what the page now shows
    if (stream) stream.close();
    stream = null;
  });
  document.addEventListener("htmx:after:swap", () => follow());
  document.addEventListener("htmx:finally:request", () => follow());  // a reply with nothing swapped, too
  follow();

  // ---- Live moves -------------------------------------------------------------------------------------------
  const statusMessages = {
    400: "The server could not accept this move. Check what you entered and try again.",
    403: "Your session has expired or this page is out of date. Reload the page and try again.",
    404: "This trial was not found: it may have been removed, or you have been logged out. Reload the page.",
    409: "This move is not possible right now. The page has been brought up to date; try again.",
    500: "Something went wrong on the server. Try again in a moment.",
  };

  const isMove = (ctx) => !!ctx?.sourceElement?.closest?.("#live-controls");

  function showMoveError(message) {
    const box = el("move-error");
    box.textContent = message;  // never innerHTML: the server's message may quote what the judge sent
    box.hidden = false;
  }

  // A readable message for a failed reply: the server's own {"error": ...} when it sent one, else one for its
  // status. An HTML error page is never shown (or parsed).
  function moveErrorMessage(response, text) {
    if (response.raw.redirected) return "You have been logged out. Reload the page to log in again.";
    if ((response.headers.get("Content-Type") || "").includes("application/json")) {
      try {
        const error = JSON.parse(text).error;
        if (typeof error === "string" && error.trim()) return error;
      } catch (e) { /* not our JSON: fall back to the status */ }
    }
    return statusMessages[response.status] ||
      "The server could not take this move (error " + response.status + "). Try again, or reload the page.";
  }

  document.addEventListener("htmx:before:request", (event) => {
    if (isMove(event.detail.ctx)) el("move-error").hidden = true;
  });

  document.addEventListener("htmx:after:request", (event) => {
    const ctx = event.detail.ctx, response = ctx.response;
    // A redirect here is to the login page: a move's or poll's reply is never a redirect otherwise.
    if (response.status < 400 && !response.raw.redirected) {
      if (isMove(ctx) && ctx.request.submitter?.id === "ask") el("question-text").value = "";
      return;
    }
    event.preventDefault();  // nothing of an error reply is swapped into the page
    if (!isMove(ctx)) return;  // a failed poll: the next one tries again
    showMoveError(moveErrorMessage(response, ctx.text));
    // The move may have been refused because the page is out of date (the debaters are speaking): fetch it anew,
    // whole (a pushed page's tag is not the one htmx holds: a reply of new characters could repeat some).
    refresh();
  });

  // No reply at all (network down, timeout).
  document.addEventListener("htmx:error", (event) => {
    if (isMove(event.detail.ctx) && event.detail.ctx.status?.startsWith("error")) {
      showMoveError("The server could not be reached. Check your connection and try again.");
    }
  });

  // Ctrl+Enter (or Cmd+Enter) in the question box asks it.
  document.addEventListener("keydown", (event) => {
    if (event.target.id === "question-text" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      el("ask-form").requestSubmit(el("ask"));
    }
  });

  // ---- Verdict keys -----------------------------------------------------------------------------------------
  // A or B chooses that answer, except while typing in a text box (where the letter is text); Ctrl+Enter (or
  // Cmd+Enter) submits the verdict, from anywhere but another form's box (the question box asks, above; the skip
  // reason is never sent by a key). Only while the verdict form is shown; the browser still checks the form.
  const typing = (target) => !!target.closest?.(
    "textarea, select, [contenteditable], input:not([type=radio]):not([type=range]):not([type=checkbox])");
  document.addEventListener("keydown", (event) => {
    const form = el("verdict-form"), section = el("verdict-section");
    if (!form || !section || section.hidden || event.defaultPrevented) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (event.target.closest?.("form") && event.target.closest("form") !== form) return;
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const key = event.key.toUpperCase();
    if (key !== "A" && key !== "B") return;
    const choice = form.querySelector(`input[name=chosen][value=${key}]`);
    if (!choice) return;
    event.preventDefault();
    choice.checked = true;
    choice.focus();
  });
})();
