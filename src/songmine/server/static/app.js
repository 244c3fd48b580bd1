// songmine page: record from the microphone or drop a file, POST it to /api/identify, show matches.
// Plain JS, no build step. Server data is only ever inserted with textContent.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    record: $("record"), label: $("record-label"), countdown: $("countdown"), level: $("level"),
    seconds: $("seconds"), drop: $("drop"), file: $("file"), status: $("status"),
    results: $("results"), library: $("library"), tpl: $("match-tpl"),
  };
  const limits = { maxUploadBytes: 20 * 1024 * 1024, maxQueryS: 60 };
  let busy = false;
  let recorder = null; // the MediaRecorder while listening: a second click stops it early

  function setState(state, message) {
    document.body.dataset.state = state;
    if (message !== undefined) els.status.textContent = message;
  }

  function displayTitle(m) {
    if (m.title) return m.title;
    const file = (m.path || "").split(/[\\/]/).pop();
    return file.replace(/\.[A-Za-z0-9]{1,5}$/, "") || `track ${m.track_id}`;
  }

  function fmtTime(s) {
    if (!Number.isFinite(s)) return "?";
    const sign = s < 0 ? "-" : "";
    s = Math.abs(s);
    const m = Math.floor(s / 60);
    const r = s - 60 * m;
    return `${sign}${m}:${r.toFixed(1).padStart(4, "0")}`;
  }

  // ---- library info and limits ----------------------------------------------------------
  async function loadHealth() {
    try {
      const r = await fetch("/api/health", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const h = await r.json();
      limits.maxUploadBytes = h.max_upload_bytes;
      limits.maxQueryS = h.max_query_s;
      els.library.textContent = `${h.n_tracks} track${h.n_tracks === 1 ? "" : "s"} in the library · songmine ${h.version}`;
      for (const opt of els.seconds.options) opt.disabled = Number(opt.value) > limits.maxQueryS;
    } catch (e) {
      els.library.textContent = "The server is not answering.";
    }
  }

  // ---- results --------------------------------------------------------------------------
  function clearResults() { els.results.replaceChildren(); }

  function showResult(rec) {
    clearResults();
    if (rec.error) { setState("error", rec.error); return; }
    if (!rec.matches || rec.matches.length === 0) {
      setState("nomatch", "No match. Try a longer or louder recording, closer to the speaker.");
      return;
    }
    rec.matches.forEach((m, i) => {
      const li = els.tpl.content.firstElementChild.cloneNode(true);
      li.querySelector(".rank").textContent = String(i + 1);
      li.querySelector(".title").textContent = displayTitle(m);
      li.querySelector(".who").textContent = [m.artist, m.album].filter(Boolean).join(" · ") || "Unknown artist";
      const pct = Math.round(100 * m.confidence);
      li.querySelector(".fill").style.width = `${pct}%`;
      li.querySelector(".pct").textContent = `${pct}% sure`;
      li.querySelector(".offset").textContent = `at ${fmtTime(m.offset_s)} into the track`;
      li.querySelector(".score").textContent = `score ${Math.round(m.score)}`;
      li.dataset.trackId = String(m.track_id);
      els.results.append(li);
    });
    const best = rec.matches[0];
    setState("done", `Best match: ${displayTitle(best)}${best.artist ? " — " + best.artist : ""}`);
  }

  async function errorText(r) {
    try {
      const body = await r.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    } catch (e) { /* not JSON */ }
    return `The server answered HTTP ${r.status}.`;
  }

  async function identify(blob, filename) {
    if (blob.size > limits.maxUploadBytes) {
      clearResults();
      setState("error", `That file is ${(blob.size / 1048576).toFixed(1)} MB; the limit is ${(limits.maxUploadBytes / 1048576).toFixed(0)} MB.`);
      return;
    }
    busy = true;
    els.record.disabled = true;
    clearResults();
    setState("uploading", "Identifying…");
    const form = new FormData();
    form.append("file", blob, filename);
    try {
      const r = await fetch("/api/identify", { method: "POST", body: form });
      if (!r.ok) { setState("error", await errorText(r)); return; }
      showResult(await r.json());
    } catch (e) {
      setState("error", `Upload failed: ${e.message || e}`);
    } finally {
      busy = false;
      els.record.disabled = false;
    }
  }

  // ---- microphone -----------------------------------------------------------------------
  function pickMimeType() {
    const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    if (!window.MediaRecorder) return null;
    return wanted.find((t) => MediaRecorder.isTypeSupported(t)) || "";
  }

  function extensionFor(type) {
    if (type.includes("ogg")) return "ogg";
    if (type.includes("mp4")) return "m4a";
    return "webm";
  }

  async function record() {
    if (recorder && recorder.state === "recording") { recorder.stop(); return; }
    if (busy) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setState("error", window.isSecureContext
        ? "This browser cannot record audio."
        : "The microphone needs a secure page: open it over https (see docs/server.md) or on localhost.");
      return;
    }
    const mimeType = pickMimeType();
    if (mimeType === null) { setState("error", "This browser has no MediaRecorder: drop a file instead."); return; }
    let stream;
    busy = true; // until the recording is over (a second click meanwhile stops it)
    try {
      // Processing meant for speech wrecks music: ask for the raw signal.
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        video: false,
      });
    } catch (e) {
      busy = false;
      setState("error", e && e.name === "NotAllowedError"
        ? "Microphone permission was refused. Allow it in the browser's site settings and try again."
        : `Could not open the microphone: ${e.message || e.name || e}`);
      return;
    }
    clearResults();
    const seconds = Math.min(Number(els.seconds.value) || 8, limits.maxQueryS);
    const chunks = [];
    const rec = mimeType ? new MediaRecorder(stream, { mimeType }) : new MediaRecorder(stream);
    recorder = rec;
    rec.ondataavailable = (ev) => { if (ev.data && ev.data.size) chunks.push(ev.data); };

    // level meter
    const AC = window.AudioContext || window.webkitAudioContext;
    const ctx = AC ? new AC() : null;
    let raf = 0;
    if (ctx) {
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      ctx.createMediaStreamSource(stream).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      const draw = () => {
        analyser.getFloatTimeDomainData(buf);
        let sum = 0;
        for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
        const db = 20 * Math.log10(Math.sqrt(sum / buf.length) + 1e-9);
        els.level.style.width = `${Math.max(0, Math.min(100, (db + 60) * (100 / 60)))}%`;
        raf = requestAnimationFrame(draw);
      };
      draw();
    }

    const done = new Promise((resolve) => { rec.onstop = resolve; });
    const t0 = performance.now();
    setState("recording", `Listening for ${seconds} s…`);
    els.label.textContent = "Tap to stop";
    els.countdown.textContent = String(seconds);
    rec.start(250);
    const tick = setInterval(() => {
      const left = Math.max(0, seconds - (performance.now() - t0) / 1000);
      els.countdown.textContent = String(Math.ceil(left));
      if (left <= 0 && rec.state === "recording") rec.stop();
    }, 100);
    await done;
    clearInterval(tick);
    cancelAnimationFrame(raf);
    els.level.style.width = "0%";
    stream.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close();
    els.label.textContent = "Listen";
    recorder = null;
    busy = false;
    const type = rec.mimeType || mimeType || "audio/webm";
    const blob = new Blob(chunks, { type });
    if (blob.size === 0) { setState("error", "The recording came out empty: check the microphone."); return; }
    await identify(blob, `microphone.${extensionFor(type)}`);
  }

  // ---- file drop / choose ---------------------------------------------------------------
  function takeFile(file) {
    if (!file || busy) return;
    identify(file, file.name);
  }

  els.record.addEventListener("click", record);
  els.file.addEventListener("change", () => { takeFile(els.file.files[0]); els.file.value = ""; });
  els.drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); els.file.click(); } });
  for (const ev of ["dragenter", "dragover"]) {
    els.drop.addEventListener(ev, (e) => { e.preventDefault(); els.drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    els.drop.addEventListener(ev, (e) => { e.preventDefault(); els.drop.classList.remove("over"); });
  }
  els.drop.addEventListener("drop", (e) => { e.stopPropagation(); takeFile(e.dataTransfer.files[0]); });
  // a file dropped anywhere else on the page should not navigate away
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) takeFile(e.dataTransfer.files[0]); });

  loadHealth();
})();
