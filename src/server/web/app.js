// omnid browser client for OpenAI Realtime sessions at /v1/realtime (GA event names).
//
// Microphone → AudioWorklet (mic-worklet.js: mono, 24 kHz, PCM16) → input_audio_buffer.append in
// 50 ms chunks; server VAD finds the turns and answers them; response.output_audio.delta is played
// back to back with WebAudio; the transcript shows both sides as the events arrive. When the
// server hears speech start (input_audio_buffer.speech_started) playback stops at once and
// conversation.item.truncate tells it how much of the answer was actually heard.
//
// Query string: autoconnect=1, voice=NAME, instructions=TEXT, max_output_tokens=N.
// Test hooks: window.omnid.snapshot() returns the counters (see `stats` below).
'use strict';

(() => {
  const OUT_RATE = 24000; // the wire rate both ways (audio/pcm, 24 kHz mono PCM16 LE)
  const CHUNK_SAMPLES = 1200; // 50 ms of microphone audio per append
  const START_LEAD_S = 0.08; // jitter margin when playback (re)starts from an empty queue
  const KNOWN_VOICES = ['Ethan', 'Chelsie', 'Aiden']; // Qwen3-Omni's; the server checks the name
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  // ---- state and test hooks ----------------------------------------------------------------
  const stats = {
    state: 'idle', // idle | connecting | connected | closed | error
    sessionId: null,
    outputAudio: null, // whether the model speaks (session.created's output_modalities)
    voice: null,
    speechStarted: 0,
    speechStopped: 0,
    userTranscripts: 0,
    committed: 0,
    responsesCreated: 0,
    responsesDone: 0,
    audioDeltas: 0,
    samplesReceived: 0,
    playbackGaps: 0, // times playback ran dry inside an answer and restarted
    micChunksSent: 0,
    micSamplesSent: 0,
    micPeakDbfs: -Infinity,
    truncations: 0,
    errors: [],
    lastError: null,
    eventCounts: {},
    recentEvents: [],
  };

  let ws = null;
  let ctx = null; // one AudioContext for capture and playback
  let outGain = null;
  let player = null;
  let mic = null; // {stream, source, node, sink}
  let configured = false; // session.update acknowledged: audio may flow
  let activeResponse = null; // id of the response in progress
  let userClosed = false;
  const interrupted = new Set(); // responses whose audio the user talked over
  const items = new Map(); // item id → transcript entry
  const itemSamples = new Map(); // assistant item id → samples received

  function recordError(message) {
    stats.lastError = message;
    stats.errors.push(message);
    if (stats.errors.length > 50) stats.errors.shift();
    const box = $('errors');
    const p = document.createElement('p');
    p.textContent = message;
    box.appendChild(p);
    while (box.childNodes.length > 5) box.removeChild(box.firstChild);
    box.hidden = false;
  }

  function clearErrors() {
    $('errors').replaceChildren();
    $('errors').hidden = true;
    stats.lastError = null;
  }

  function setState(s) {
    stats.state = s;
    const el = $('state');
    el.textContent = s;
    el.dataset.state = s;
    const live = s === 'connecting' || s === 'connected';
    $('connect').textContent = live ? 'Disconnect' : 'Connect';
    $('connect').classList.toggle('secondary', live);
    $('key').disabled = live;
    $('text').disabled = $('send').disabled = s !== 'connected';
  }

  // ---- audio out ------------------------------------------------------------------------------
  // Buffers are scheduled back to back on the AudioContext clock; what was played is measured
  // against that clock (currentTime), not assumed from what was scheduled.
  class Player {
    constructor(context, destination) {
      this.ctx = context;
      this.dest = destination;
      this.next = 0; // context time where the next buffer starts
      this.segments = []; // {src, start, end, item} still (partly) ahead of the clock
      this.playedDone = 0; // seconds of segments entirely in the past
      this.itemPlayed = new Map(); // item → seconds, for segments entirely in the past
      this.lastItem = null;
    }

    enqueue(samples, item) {
      const buffer = this.ctx.createBuffer(1, samples.length, OUT_RATE);
      buffer.copyToChannel(samples, 0);
      const src = this.ctx.createBufferSource();
      src.buffer = buffer;
      src.connect(this.dest);
      const now = this.ctx.currentTime;
      let start = this.next;
      if (start < now + 0.005) {
        if (this.lastItem === item && this.next > 0) stats.playbackGaps++;
        start = now + START_LEAD_S;
      }
      src.start(start);
      this.next = start + buffer.duration;
      this.segments.push({ src, start, end: this.next, item });
      this.lastItem = item;
    }

    fold(now) {
      const keep = [];
      for (const s of this.segments) {
        if (s.end <= now) {
          const d = s.end - s.start;
          this.playedDone += d;
          this.itemPlayed.set(s.item, (this.itemPlayed.get(s.item) || 0) + d);
        } else {
          keep.push(s);
        }
      }
      this.segments = keep;
    }

    /** Seconds actually played, all items or one. */
    played(item) {
      const now = this.ctx.currentTime;
      this.fold(now);
      let t = item === undefined ? this.playedDone : this.itemPlayed.get(item) || 0;
      for (const s of this.segments) {
        if (item === undefined || s.item === item) t += Math.max(0, Math.min(now, s.end) - s.start);
      }
      return t;
    }

    playing() {
      return this.next > this.ctx.currentTime;
    }

    /** Stops everything at once; returns the item that was playing (or queued) last. */
    stop() {
      const now = this.ctx.currentTime;
      for (const s of this.segments) {
        try {
          s.src.stop();
        } catch (_) {
          // never started: nothing to stop
        }
        s.end = Math.max(s.start, Math.min(s.end, now));
      }
      this.fold(Infinity);
      this.next = 0;
      const item = this.lastItem;
      this.lastItem = null;
      return item;
    }
  }

  function decodePcm16(b64) {
    const bin = atob(b64);
    const n = bin.length >> 1;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const lo = bin.charCodeAt(2 * i);
      const hi = bin.charCodeAt(2 * i + 1);
      let v = (hi << 8) | lo;
      if (v >= 0x8000) v -= 0x10000;
      out[i] = v / 32768;
    }
    return out;
  }

  function encodePcm16(pcm) {
    let bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    if (!LITTLE_ENDIAN) {
      bytes = new Uint8Array(pcm.byteLength);
      const view = new DataView(bytes.buffer);
      pcm.forEach((v, i) => view.setInt16(2 * i, v, true));
    }
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }

  // ---- audio in ---------------------------------------------------------------------------------
  async function startMic() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    if (!ws) {
      stream.getTracks().forEach((t) => t.stop());
      return;
    }
    await ctx.audioWorklet.addModule('mic-worklet.js');
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, 'omnid-mic', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: 'explicit',
      processorOptions: { chunkSamples: CHUNK_SAMPLES },
    });
    // A silent path to the destination keeps the node pulled by the graph in every browser.
    const sink = ctx.createGain();
    sink.gain.value = 0;
    source.connect(node).connect(sink).connect(ctx.destination);
    node.port.onmessage = ({ data }) => {
      const db = data.peak > 0 ? 20 * Math.log10(data.peak) : -Infinity;
      stats.micPeakDbfs = Math.max(stats.micPeakDbfs, db);
      $('level').style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
      if (!ws || ws.readyState !== WebSocket.OPEN || !configured) return;
      ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: encodePcm16(data.pcm) }));
      stats.micChunksSent++;
      stats.micSamplesSent += data.pcm.length;
    };
    mic = { stream, source, node, sink };
  }

  function stopMic() {
    if (!mic) return;
    mic.node.port.onmessage = null;
    mic.source.disconnect();
    mic.node.disconnect();
    mic.sink.disconnect();
    mic.stream.getTracks().forEach((t) => t.stop());
    mic = null;
    $('level').style.width = '0';
  }

  // ---- transcript -----------------------------------------------------------------------------
  function entry(id, role) {
    let e = items.get(id);
    if (!e) {
      const el = document.createElement('div');
      el.className = `turn ${role}`;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = role === 'user' ? 'You' : 'omnid';
      const heard = document.createElement('span');
      const unheard = document.createElement('span');
      unheard.className = 'unheard';
      const tag = document.createElement('span');
      tag.className = 'tag';
      el.append(who, heard, unheard, tag);
      $('transcript').appendChild(el);
      $('empty').hidden = true;
      e = { id, role, text: '', heard: null, el, heardEl: heard, unheardEl: unheard, tagEl: tag };
      items.set(id, e);
    }
    return e;
  }

  function render(e) {
    if (e.heard === null) {
      e.heardEl.textContent = e.text;
      e.unheardEl.textContent = '';
    } else {
      e.heardEl.textContent = e.heard;
      e.unheardEl.textContent = e.text.startsWith(e.heard) ? e.text.slice(e.heard.length) : '';
    }
    const pane = $('transcript').parentElement;
    pane.scrollTop = pane.scrollHeight;
  }

  function setText(e, text, tag) {
    e.text = text;
    if (tag !== undefined) e.tagEl.textContent = tag;
    render(e);
  }

  function partsText(content) {
    return (content || [])
      .map((c) => c.text || c.transcript || (c.type === 'input_image' ? '[image]' : ''))
      .filter(Boolean)
      .join(' ');
  }

  // ---- protocol -------------------------------------------------------------------------------
  function send(event) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event));
  }

  function sessionUpdate(withVoice) {
    const session = {
      type: 'realtime',
      output_modalities: stats.outputAudio ? ['audio'] : ['text'],
      audio: {
        input: {
          format: { type: 'audio/pcm', rate: OUT_RATE },
          turn_detection: {
            type: 'server_vad',
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            create_response: true,
            interrupt_response: true,
          },
          // The model transcribes each turn; the transcript replaces "(spoken …)" in the pane.
          transcription: { model: 'omnid' },
        },
        output: { format: { type: 'audio/pcm', rate: OUT_RATE } },
      },
    };
    const voice = $('voice').value.trim();
    if (withVoice && stats.outputAudio && voice) session.audio.output.voice = voice;
    if (params.get('instructions')) session.instructions = params.get('instructions');
    const max = params.get('max_output_tokens');
    if (max) session.max_output_tokens = max === 'inf' ? 'inf' : Number(max);
    send({ type: 'session.update', session });
  }

  /** Barge-in: stop playback now and tell the server how much of the answer was heard. */
  function interrupt() {
    if (activeResponse) interrupted.add(activeResponse);
    if (!player || !player.playing()) return;
    const item = player.lastItem;
    const playedMs = Math.floor(player.played(item) * 1000);
    player.stop();
    const receivedMs = Math.floor(((itemSamples.get(item) || 0) * 1000) / OUT_RATE);
    if (item && playedMs < receivedMs) {
      send({ type: 'conversation.item.truncate', item_id: item, content_index: 0, audio_end_ms: playedMs });
      stats.truncations++;
    }
  }

  function onEvent(ev) {
    stats.eventCounts[ev.type] = (stats.eventCounts[ev.type] || 0) + 1;
    stats.recentEvents.push(ev.type);
    if (stats.recentEvents.length > 100) stats.recentEvents.shift();
    switch (ev.type) {
      case 'session.created': {
        const s = ev.session;
        stats.sessionId = s.id;
        stats.outputAudio = (s.output_modalities || []).includes('audio');
        const voice = s.audio && s.audio.output && s.audio.output.voice;
        if (voice && !KNOWN_VOICES.some((v) => v.toLowerCase() === voice.toLowerCase())) {
          const o = document.createElement('option');
          o.value = voice;
          $('voices').appendChild(o);
        }
        if (!$('voice').value && params.get('voice')) $('voice').value = params.get('voice');
        if (!$('voice').value && voice) $('voice').placeholder = voice;
        sessionUpdate(true);
        break;
      }
      case 'session.updated': {
        const s = ev.session;
        stats.voice = s.audio && s.audio.output && s.audio.output.voice;
        if (!configured) {
          configured = true;
          setState('connected');
          startMic().catch((e) => recordError(`microphone: ${e.message || e} (typing still works)`));
        }
        break;
      }
      case 'input_audio_buffer.speech_started': {
        stats.speechStarted++;
        interrupt();
        const e = entry(ev.item_id, 'user');
        e.startMs = ev.audio_start_ms;
        setText(e, '(speaking…)');
        break;
      }
      case 'input_audio_buffer.speech_stopped': {
        stats.speechStopped++;
        const e = items.get(ev.item_id);
        if (e && e.startMs !== undefined) {
          setText(e, `(spoken, ${((ev.audio_end_ms - e.startMs) / 1000).toFixed(1)} s)`);
        }
        break;
      }
      case 'input_audio_buffer.committed':
        stats.committed++;
        break;
      case 'conversation.item.input_audio_transcription.delta': {
        const e = entry(ev.item_id, 'user');
        if (!e.transcribing) {
          e.transcribing = true;
          setText(e, '');
        }
        setText(e, e.text + ev.delta);
        break;
      }
      case 'conversation.item.input_audio_transcription.completed': {
        stats.userTranscripts++;
        setText(entry(ev.item_id, 'user'), ev.transcript || '(spoken, no words heard)');
        break;
      }
      case 'conversation.item.input_audio_transcription.failed':
        recordError(`transcription: ${(ev.error && ev.error.message) || 'failed'}`);
        break;
      case 'conversation.item.added':
      case 'conversation.item.done': {
        const it = ev.item;
        if (!it || it.type !== 'message') break;
        const e = entry(it.id, it.role);
        if (it.role === 'user' || it.role === 'system') {
          const audio = (it.content || []).some((c) => c.type === 'input_audio');
          const text = partsText(it.content);
          // Audio turns show their length until their transcript arrives.
          if (!e.transcribing && (text || !e.text.startsWith('(spoken'))) setText(e, text || (audio ? '(spoken)' : ''));
        } else if (ev.type === 'conversation.item.done' && !e.text) {
          setText(e, partsText(it.content));
        }
        break;
      }
      case 'response.created':
        stats.responsesCreated++;
        activeResponse = ev.response.id;
        break;
      case 'response.output_audio_transcript.delta':
      case 'response.output_text.delta': {
        const e = entry(ev.item_id, 'assistant');
        setText(e, e.text + ev.delta);
        break;
      }
      case 'response.output_audio.delta': {
        const samples = decodePcm16(ev.delta);
        stats.audioDeltas++;
        stats.samplesReceived += samples.length;
        itemSamples.set(ev.item_id, (itemSamples.get(ev.item_id) || 0) + samples.length);
        if (!interrupted.has(ev.response_id) && player) player.enqueue(samples, ev.item_id);
        break;
      }
      case 'response.done': {
        stats.responsesDone++;
        const r = ev.response;
        if (r.id === activeResponse) activeResponse = null;
        const out = r.output && r.output[0];
        if (out && items.has(out.id) && r.status !== 'completed') {
          items.get(out.id).tagEl.textContent = `(${r.status})`;
        }
        if (r.status === 'failed') {
          const d = r.status_details && r.status_details.error;
          recordError(`response failed: ${(d && d.message) || 'unknown error'}`);
        }
        break;
      }
      case 'conversation.item.truncated':
        // Ask for the item back to show what is kept (the text heard).
        send({ type: 'conversation.item.retrieve', item_id: ev.item_id });
        break;
      case 'conversation.item.retrieved': {
        const e = items.get(ev.item.id);
        const c = ev.item.content && ev.item.content[0];
        if (e && c && typeof c.transcript === 'string') {
          e.heard = c.transcript;
          e.tagEl.textContent = '(interrupted)';
          render(e);
        }
        break;
      }
      case 'error': {
        const err = ev.error || {};
        const param = err.param ? ` [${err.param}]` : '';
        recordError(`${err.type || 'error'}: ${err.message}${param}`);
        // A voice the model lacks (the error names its voices): configure the rest anyway, and
        // show the voice still in use.
        if (err.param === 'session.audio.output.voice') {
          if (!configured) sessionUpdate(false);
          $('voice').value = stats.voice || '';
        }
        break;
      }
      default:
        break;
    }
  }

  // ---- connection -------------------------------------------------------------------------------
  async function explainFailure(key) {
    // The upgrade's HTTP status is invisible to scripts; ask a guarded route with the same key.
    try {
      const r = await fetch('v1/models', { headers: key ? { Authorization: `Bearer ${key}` } : {} });
      if (r.status === 401) {
        const body = await r.json().catch(() => ({}));
        return `the daemon refused the API key: ${(body.error && body.error.message) || r.statusText}`;
      }
    } catch (_) {
      return 'the daemon is not reachable';
    }
    return 'the WebSocket could not be opened';
  }

  function connect(opts) {
    if (ws) return;
    const key = ((opts && opts.key) !== undefined ? opts.key : $('key').value).trim();
    if (opts && opts.key !== undefined) $('key').value = key;
    clearErrors();
    userClosed = false;
    configured = false;
    activeResponse = null;
    interrupted.clear();
    if (!ctx) {
      ctx = new AudioContext();
      outGain = ctx.createGain();
      outGain.connect(ctx.destination);
      player = new Player(ctx, outGain);
    }
    // Called from a click (or with autoplay allowed): resuming here satisfies autoplay policies.
    ctx.resume().catch(() => {});
    setState('connecting');
    const url = new URL('v1/realtime', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    const protocols = key ? ['realtime', `openai-insecure-api-key.${key}`] : ['realtime'];
    let opened = false;
    ws = new WebSocket(url, protocols);
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (e) {
        recordError(`not JSON from the server: ${e.message}`);
        return;
      }
      try {
        onEvent(ev);
      } catch (e) {
        recordError(`page error on ${ev.type}: ${e.message}`);
      }
    };
    ws.onclose = async (c) => {
      ws = null;
      configured = false;
      stopMic();
      if (player) player.stop();
      if (userClosed) {
        setState('closed');
      } else if (!opened) {
        setState('error');
        recordError(`could not connect: ${await explainFailure(key)}`);
      } else {
        setState('closed');
        recordError(`the session closed (code ${c.code}${c.reason ? `: ${c.reason}` : ''})`);
      }
    };
  }

  function disconnect() {
    if (!ws) return;
    userClosed = true;
    ws.close(1000, 'bye');
  }

  function sendText(text) {
    text = (text || '').trim();
    if (!text || !configured) return false;
    if (activeResponse) {
      send({ type: 'response.cancel' });
      interrupt();
    }
    send({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] },
    });
    send({ type: 'response.create' });
    return true;
  }

  function snapshot() {
    const transcript = [...items.values()].map((e) => ({ id: e.id, role: e.role, text: e.text, heard: e.heard }));
    return {
      ...stats,
      micPeakDbfs: Number.isFinite(stats.micPeakDbfs) ? stats.micPeakDbfs : null,
      contextState: ctx ? ctx.state : null,
      contextRate: ctx ? ctx.sampleRate : null,
      secondsReceived: stats.samplesReceived / OUT_RATE,
      playedSeconds: player ? player.played() : 0,
      micOn: !!mic,
      transcript,
      assistantTranscript: transcript
        .filter((e) => e.role === 'assistant')
        .map((e) => e.text)
        .join('\n'),
      userTurns: transcript.filter((e) => e.role === 'user').length,
    };
  }

  // ---- page wiring ------------------------------------------------------------------------------
  for (const v of KNOWN_VOICES) {
    const o = document.createElement('option');
    o.value = v;
    $('voices').appendChild(o);
  }
  $('connect').addEventListener('click', () => (ws ? disconnect() : connect()));
  $('voice').addEventListener('change', () => {
    const voice = $('voice').value.trim();
    if (configured && voice) send({ type: 'session.update', session: { audio: { output: { voice } } } });
  });
  $('text-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (sendText($('text').value)) $('text').value = '';
  });
  setInterval(() => {
    const s = snapshot();
    $('stats').textContent =
      `session ${s.sessionId || '—'} · voice ${s.voice || '—'} · mic ${s.micOn ? 'on' : 'off'}` +
      ` · audio in ${(s.micSamplesSent / OUT_RATE).toFixed(1)} s · answers ${s.responsesDone}` +
      ` · audio out ${s.secondsReceived.toFixed(1)} s received, ${s.playedSeconds.toFixed(1)} s played`;
  }, 250);

  window.omnid = { connect, disconnect, sendText, snapshot, stats };
  setState('idle');
  if (params.get('autoconnect') === '1') connect();
})();
