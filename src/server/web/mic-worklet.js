// omnid microphone worklet: mixes the input to mono, resamples it from the context's rate to
// 24 kHz with a windowed-sinc filter (band-limited, so 44.1/48 kHz input does not alias), and
// posts PCM16 chunks of `chunkSamples` (transferred Int16Array) plus the chunk's peak level.
'use strict';

const OUT_RATE = 24000;
// Kernel half-width in output-rate samples: 16 taps each side is ample for speech.
const HALF_TAPS = 16;
const TABLE_RES = 512;

class MicResampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.chunkSamples = opts.chunkSamples || 1200; // 50 ms at 24 kHz
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    // Low-pass at 0.9 × the lower Nyquist, in cycles per input sample × 2.
    this.cutoff = Math.min(1, 1 / this.step) * 0.9;
    this.half = Math.ceil(HALF_TAPS * Math.max(1, this.step));
    this.buildTable();
    // Input history; primed with `half` zeros so the first output has its left context.
    this.buf = new Float32Array(8192);
    this.len = this.half;
    this.pos = this.half; // position of the next output sample in `buf`, in input samples
    this.out = new Int16Array(this.chunkSamples);
    this.outLen = 0;
    this.peak = 0;
  }

  // The kernel, tabulated at 1/TABLE_RES input samples and interpolated: cutoff · sinc(cutoff · x)
  // under a Hann window of width 2·half (no sin/cos per tap on the audio thread).
  buildTable() {
    const n = this.half * TABLE_RES + 2;
    this.table = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const x = j / TABLE_RES;
      if (x >= this.half) break;
      const w = 0.5 + 0.5 * Math.cos((Math.PI * x) / this.half);
      const a = Math.PI * this.cutoff * x;
      this.table[j] = this.cutoff * (a === 0 ? 1 : Math.sin(a) / a) * w;
    }
  }

  kernel(x) {
    const f = Math.abs(x) * TABLE_RES;
    const j = Math.floor(f);
    if (j + 1 >= this.table.length) return 0;
    return this.table[j] + (f - j) * (this.table[j + 1] - this.table[j]);
  }

  push(samples) {
    if (this.len + samples.length > this.buf.length) {
      const bigger = new Float32Array(Math.max(this.buf.length * 2, this.len + samples.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
    while (Math.floor(this.pos) + this.half < this.len) {
      const c = Math.floor(this.pos);
      let acc = 0;
      let norm = 0;
      for (let i = c - this.half + 1; i <= c + this.half; i++) {
        const k = this.kernel(this.pos - i);
        acc += k * this.buf[i];
        norm += k;
      }
      const y = norm > 0 ? acc / norm : 0;
      this.peak = Math.max(this.peak, Math.abs(y));
      const s = Math.max(-1, Math.min(1, y));
      this.out[this.outLen++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      if (this.outLen === this.chunkSamples) {
        this.port.postMessage({ pcm: this.out, peak: this.peak }, [this.out.buffer]);
        this.out = new Int16Array(this.chunkSamples);
        this.outLen = 0;
        this.peak = 0;
      }
      this.pos += this.step;
    }
    // Drop the input no later output needs.
    const keep = Math.floor(this.pos) - this.half + 1;
    if (keep > 0) {
      this.buf.copyWithin(0, keep, this.len);
      this.len -= keep;
      this.pos -= keep;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0 && input[0].length > 0) {
      let mono = input[0];
      if (input.length > 1) {
        mono = new Float32Array(input[0].length);
        for (const ch of input) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / input.length;
      }
      this.push(mono);
    }
    return true;
  }
}

registerProcessor('omnid-mic', MicResampler);
