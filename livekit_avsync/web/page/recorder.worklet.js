// Passes the received audio through unchanged and posts a mono int16 copy of it to the page
// every 8 render quanta (about 21 ms at 48 kHz), with the context frame of its first sample.
// Render quanta while no track feeds it are skipped: the page played nothing then.
const QUANTA = 8;

class AvsyncRecorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buffer = new Int16Array(128 * QUANTA);
    this.filled = 0;
    this.first = 0;
  }

  process(inputs, outputs) {
    const input = inputs[0];
    const output = outputs[0];
    for (let c = 0; c < output.length; c++) {
      if (input[c]) output[c].set(input[c]);
      else output[c].fill(0);
    }
    if (input.length === 0) {
      this.filled = 0; // not connected to a track: nothing is played, a batch starts afresh
      return true;
    }
    const n = input[0].length;
    if (this.filled === 0) this.first = currentFrame;
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let c = 0; c < input.length; c++) sum += input[c][i];
      const mono = sum / input.length;
      this.buffer[this.filled + i] = Math.max(-32768, Math.min(32767, Math.round(mono * 32768)));
    }
    this.filled += n;
    if (this.filled + 128 > this.buffer.length) {
      const samples = this.buffer.slice(0, this.filled);
      this.port.postMessage({ frame: this.first, samples }, [samples.buffer]);
      this.filled = 0;
    }
    return true;
  }
}

registerProcessor('avsync-recorder', AvsyncRecorder);
