// The test call's microphone as the fork protocol's audio: mono, 16 kHz, 16-bit
// little-endian PCM in frames of 20 ms (what mod_audio_fork sends for a 16k call).
//
// The context runs at the device's rate (44.1 or 48 kHz, usually). Resampling: a
// windowed-sinc low-pass at the input rate (cut below the output's Nyquist, so what
// would fold back is removed first), then linear interpolation at the output rate.
// State (filter history, fractional position) carries over between the 128-sample
// render quanta, so frames join without clicks.
"use strict";

const FRAME_S = 0.02;
const TAPS = 63; // odd: a symmetric filter with a whole-sample delay

function lowPass(cutoff, taps) {
  // cutoff: a fraction of the input rate (0..0.5). Blackman window.
  const h = new Float32Array(taps);
  const mid = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1))
      + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum; // unity gain at DC
  return h;
}

class PcmWorklet extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const outRate = (options.processorOptions && options.processorOptions.outRate) || 16000;
    this.step = sampleRate / outRate; // input samples per output sample
    // Downsampling only needs the filter; 0.45 leaves a transition band below Nyquist.
    this.filter = this.step > 1 ? lowPass(0.45 / this.step, TAPS) : null;
    this.history = new Float32Array(this.filter ? TAPS - 1 : 0);
    this.last = 0; // the previous quantum's last filtered sample (position -1)
    this.pos = 0; // the next output sample's position in the current quantum
    this.frameSamples = Math.round(outRate * FRAME_S);
    this.newFrame();
    this.stopped = false;
    this.port.onmessage = (event) => { if (event.data === "stop") this.stopped = true; };
  }

  newFrame() {
    this.frame = new ArrayBuffer(this.frameSamples * 2);
    this.view = new DataView(this.frame);
    this.filled = 0;
  }

  push(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.view.setInt16(this.filled * 2, Math.round(clipped * 32767), true);
    this.filled += 1;
    if (this.filled === this.frameSamples) {
      this.port.postMessage(this.frame, [this.frame]);
      this.newFrame();
    }
  }

  filtered(mono) {
    if (!this.filter) return mono;
    const n = mono.length;
    const keep = this.history.length;
    const buf = new Float32Array(keep + n);
    buf.set(this.history);
    buf.set(mono, keep);
    const out = new Float32Array(n);
    const h = this.filter;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k < TAPS; k++) acc += h[k] * buf[i + k];
      out[i] = acc;
    }
    this.history = buf.slice(n);
    return out;
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // no microphone connected (yet)
    const n = input[0].length;
    const mono = new Float32Array(n);
    for (const channel of input) {
      for (let i = 0; i < n; i++) mono[i] += channel[i] / input.length;
    }
    const y = this.filtered(mono);
    let pos = this.pos;
    while (pos < n - 1) {
      const i = Math.floor(pos);
      const frac = pos - i;
      const a = i < 0 ? this.last : y[i];
      this.push(a + (y[i + 1] - a) * frac);
      pos += this.step;
    }
    this.pos = pos - n;
    this.last = y[n - 1];
    return true;
  }
}

registerProcessor("pcm-worklet", PcmWorklet);
