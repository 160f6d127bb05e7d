// The live-class page: publish (teacher) or join (learner) over WebRTC with the live server,
// show the video, chat and answer quizzes on the data channel, and every N seconds send the
// browser's own getStats() figures to the collector as live_qos events (source "browser").
//
// Query parameters fill the form and ?autostart=1 starts at once:
//   /?room=r1&role=learner&learner_id=ana&key=<browser key>&network_type=5g_sa&region=eu-west

const $ = (id) => document.getElementById(id);
const state = { sent: 0, rejected: 0, failed: 0, intervals: 0, connected: false, errors: [] };
window.liveState = state;  // read by tests and by people with the console open

function fail(message) {
  state.errors.push(String(message));
  $("error").textContent = state.errors.slice(-5).join("\n");
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function waitForIce(pc) {
  // The server answers once; send the offer with every candidate in it.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 5000);
  });
}

async function api(path, key, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": key },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${answer.error}: ${answer.detail}`);
  return answer;
}

// --- getStats() to live_qos -------------------------------------------------------------------

const ms = (seconds) => (seconds == null ? null : seconds * 1000);
const num = (x) => (typeof x === "number" && isFinite(x) ? x : null);
const nonneg = (x) => (num(x) == null ? null : Math.max(0, x));
const REASONS = new Set(["none", "cpu", "bandwidth", "other"]);

function selectedRtt(report) {
  let rtt = null;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded"
        && num(s.currentRoundTripTime) != null) rtt = ms(s.currentRoundTripTime);
  });
  return rtt;
}

// One row per stream: inbound-rtp for what this participant receives, outbound-rtp (with the
// remote side's report) for what it sends. Counters are cumulative; the interval's bitrate
// and freeze time come from the previous report.
function rows(report, previous, session, intervalS) {
  const out = [];
  const pairRtt = selectedRtt(report);
  const remote = {};
  report.forEach((s) => { if (s.type === "remote-inbound-rtp") remote[s.localId] = s; });
  report.forEach((s) => {
    if ((s.type !== "inbound-rtp" && s.type !== "outbound-rtp") || !s.kind) return;
    const before = previous.get(s.id);
    const seconds = before ? (s.timestamp - before.timestamp) / 1000 : null;
    const bytes = s.type === "inbound-rtp" ? "bytesReceived" : "bytesSent";
    const row = {
      kind: s.kind,
      direction: s.type === "inbound-rtp" ? "inbound" : "outbound",
      interval_s: seconds && seconds > 0 ? seconds : intervalS,
      bitrate_kbps: seconds > 0 ? nonneg(((s[bytes] - before[bytes]) * 8) / 1000 / seconds) : null,
    };
    if (s.type === "inbound-rtp") {
      Object.assign(row, {
        rtt_ms: pairRtt,
        jitter_ms: nonneg(ms(s.jitter)),
        packets_received: nonneg(s.packetsReceived),
        packets_lost: nonneg(s.packetsLost),
      });
      if (before) {
        const got = s.packetsReceived - before.packetsReceived;
        const lost = Math.max(0, s.packetsLost - before.packetsLost);
        row.fraction_lost = got + lost > 0 ? Math.min(1, lost / (got + lost)) : 0;
      }
      if (s.kind === "video") {
        Object.assign(row, {
          frames_per_second: nonneg(s.framesPerSecond ?? 0),
          frames_dropped: nonneg(s.framesDropped),
          freeze_count: nonneg(s.freezeCount),
          total_freezes_duration_ms: nonneg(ms(s.totalFreezesDuration)),
        });
        if (before && num(s.totalFreezesDuration) != null) {
          const frozen = ms(s.totalFreezesDuration - (before.totalFreezesDuration || 0));
          row.freeze_ms = Math.min(Math.max(0, frozen), row.interval_s * 1000);
        }
        // this interval's mean wait per emitted frame (the counters are lifetime totals)
        const emitted = s.jitterBufferEmittedCount - (before ? before.jitterBufferEmittedCount || 0 : 0);
        const waited = s.jitterBufferDelay - (before ? before.jitterBufferDelay || 0 : 0);
        if (emitted > 0 && waited >= 0) row.jitter_buffer_delay_ms = ms(waited / emitted);
      }
    } else {
      const r = remote[s.id];
      Object.assign(row, {
        rtt_ms: r && num(r.roundTripTime) != null ? ms(r.roundTripTime) : pairRtt,
        jitter_ms: r ? nonneg(ms(r.jitter)) : null,
        packets_lost: r ? nonneg(r.packetsLost) : null,
        fraction_lost: r && num(r.fractionLost) != null ? Math.min(1, Math.max(0, r.fractionLost)) : null,
      });
      if (s.kind === "video") {
        row.frames_per_second = nonneg(s.framesPerSecond ?? 0);
        if (REASONS.has(s.qualityLimitationReason)) row.quality_limitation_reason = s.qualityLimitationReason;
      }
    }
    for (const k of Object.keys(row)) if (row[k] == null) delete row[k];
    out.push({
      type: "live_qos",
      event_id: uuid(),
      schema_version: 1,
      occurred_at: new Date().toISOString(),
      learner_id: session.learner_id,
      session_id: session.peer_id,
      client: session.client,
      course_id: session.course_id || undefined,
      room_id: session.room_id,
      peer_id: session.peer_id,
      source: "browser",
      role: session.role,
      ...row,
    });
  });
  previous.clear();
  report.forEach((s) => previous.set(s.id, s));
  return out;
}

async function report(pc, session, previous, config) {
  const events = rows(await pc.getStats(), previous, session, config.browser_qos_interval_s);
  if (state.intervals++ === 0 || events.length === 0) return;  // the first report starts the interval
  const video = events.find((e) => e.kind === "video");
  if (video) {
    $("quality").textContent = `video ${video.direction}: ${(video.frames_per_second ?? 0).toFixed(1)} fps, `
      + `${(video.bitrate_kbps ?? 0).toFixed(0)} kbps, rtt ${(video.rtt_ms ?? 0).toFixed(1)} ms, `
      + `freezes ${video.freeze_count ?? 0}`;
  }
  try {
    const response = await fetch(`${config.collector_url}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": session.key },
      body: JSON.stringify(events),
    });
    const body = await response.json();
    state.sent += body.accepted ?? 0;
    state.rejected += body.rejected ?? 0;
    if (!response.ok) fail(`collector ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
  } catch (err) {
    state.failed += events.length;
    fail(`collector unreachable: ${err}`);
  }
}

// --- the class --------------------------------------------------------------------------------

function show(line) {
  const p = document.createElement("div");
  p.textContent = line;
  $("chat").append(p);
  $("chat").scrollTop = $("chat").scrollHeight;
}

function onMessage(channel, raw) {
  let m;
  try { m = JSON.parse(raw); } catch { return; }
  if (m.type === "chat") show(`${m.role} ${m.from}: ${m.text}`);
  else if (m.type === "error") fail(`${m.reason}: ${m.detail}`);
  else if (m.type === "answer") show(`${m.peer_id} answered ${m.quiz_id}: ${m.correct ? "right" : "wrong"}`);
  else if (m.type === "ack" && m.for === "quiz_answer") show(`answer ${m.correct ? "right" : "wrong"} (${m.status})`);
  else if (m.type === "quiz") {
    const box = $("quiz");
    box.replaceChildren(Object.assign(document.createElement("p"), { textContent: m.question }));
    m.choices.forEach((choice, i) => {
      const b = Object.assign(document.createElement("button"), { textContent: choice });
      b.onclick = () => { channel.send(JSON.stringify({ type: "quiz_answer", quiz_id: m.quiz_id, choice: i, event_id: uuid() })); box.replaceChildren(); };
      box.append(b);
    });
  }
}

async function start(form, clicked) {
  const f = Object.fromEntries(new FormData(form));
  const config = await (await fetch("/v1/config")).json();
  const pc = new RTCPeerConnection({ iceServers: [] });
  const channel = pc.createDataChannel("class");
  channel.onmessage = (e) => onMessage(channel, e.data);
  $("say").onsubmit = (e) => {
    e.preventDefault();
    const text = e.target.text.value.trim();
    if (text && channel.readyState === "open") { channel.send(JSON.stringify({ type: "chat", text })); show(`me: ${text}`); }
    e.target.text.value = "";
  };
  if (f.role === "teacher") {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    media.getTracks().forEach((t) => pc.addTrack(t, media));
    $("video").srcObject = media;
  } else {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    const remote = new MediaStream();
    pc.ontrack = (e) => { remote.addTrack(e.track); $("video").srcObject = remote; };
    // Browsers play sound only after a click: started from the form, hear the teacher at once;
    // auto-started, the video's controls unmute it.
    if (clicked) $("video").muted = false;
  }
  let timer = null;
  pc.onconnectionstatechange = () => {
    state.connected = pc.connectionState === "connected";
    $("status").textContent = `${f.role} in room ${f.room}: ${pc.connectionState}`;
    if (["failed", "closed", "disconnected"].includes(pc.connectionState) && timer !== null) {
      clearInterval(timer);  // the class is over for this page: no more rows of frozen counters
      timer = null;
    }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const client = {
    platform: "web",
    app_version: "live-page/1",
    device: (navigator.userAgent.match(/(Chrome|Firefox|Safari)\/[\d.]+/) || ["browser"])[0],
    network_type: f.network_type,
    region: f.region || "unknown",
  };
  const path = `/v1/rooms/${encodeURIComponent(f.room)}/${f.role === "teacher" ? "publish" : "join"}`;
  const answer = await api(path, f.key, {
    type: "offer", sdp: pc.localDescription.sdp, learner_id: f.learner_id, client,
    ...(f.role === "teacher" && f.teacher_token ? { teacher_token: f.teacher_token } : {}),
  });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  const room = await (await fetch(`/v1/rooms/${encodeURIComponent(f.room)}`, { headers: { "X-API-Key": f.key } })).json();
  const session = {
    key: f.key, role: f.role, learner_id: f.learner_id, peer_id: answer.peer_id,
    room_id: answer.room_id, course_id: room.course_id, client,
  };
  state.peer_id = answer.peer_id;
  addEventListener("pagehide", () => {
    fetch(`/v1/rooms/${encodeURIComponent(f.room)}/peers/${answer.peer_id}`, {
      method: "DELETE", keepalive: true,
      headers: { "X-API-Key": f.key, "X-Peer-Token": answer.peer_token },
    });
  });
  if (f.role === "teacher") {
    const ask = $("ask");
    ask.hidden = false;
    let asked = 0;
    ask.onsubmit = (e) => {
      e.preventDefault();
      const choices = ask.choices.value.split("|").map((c) => c.trim()).filter(Boolean);
      channel.send(JSON.stringify({
        type: "quiz", quiz_id: `q-${Date.now()}-${++asked}`, question: ask.question.value,
        choices, answer: Number(ask.answer.value) - 1,
      }));
      show(`asked: ${ask.question.value}`);
      ask.reset();
    };
  }
  const previous = new Map();
  const every = (config.browser_qos_interval_s || answer.qos_interval_s) * 1000;
  timer = setInterval(() => report(pc, session, previous, config).catch(fail), every);
}

const params = new URLSearchParams(location.search);
const form = $("join");
for (const [k, v] of params) if (form.elements[k]) form.elements[k].value = v;
form.onsubmit = (e) => { e.preventDefault(); start(form, true).catch(fail); };
if (params.get("autostart") === "1") start(form, false).catch(fail);
