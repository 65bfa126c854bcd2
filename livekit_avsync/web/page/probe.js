// What the viewer presents and plays, and when, on the page's performance.now() clock, reported
// through window.avsyncReport (a DevTools binding the measuring side adds):
// - video: for every frame the compositor presents (requestVideoFrameCallback), its expected
//   display time and the luma of the top quarter of the picture scaled to 128x18 (where the
//   marker code is), plus, when asked for, the exact decoded luma of one rectangle (the mouth);
// - audio: the received track as the room's Web Audio graph plays it (mono int16), each batch
//   with the time its first sample reaches the output (the context's output timestamp).
// Decoding markers, bursts and mouths is left to the measuring side (one decoder for all).
const BAND_W = 128;
const BAND_H = 18; // the top quarter of a 128x72 picture

function base64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export async function createProbe(audioContext, options) {
  const send = (kind, data) => window.avsyncReport?.(JSON.stringify({ kind, ...data }));
  await audioContext.audioWorklet.addModule('recorder.worklet.js');
  const audioNode = new AudioWorkletNode(audioContext, 'avsync-recorder');
  audioNode.port.onmessage = ({ data }) => {
    const stamp = audioContext.getOutputTimestamp();
    if (!stamp.performanceTime) return; // the output has not started yet
    const at = data.frame / audioContext.sampleRate;
    send('audio', {
      t: stamp.performanceTime + (at - stamp.contextTime) * 1000,
      rate: audioContext.sampleRate,
      pcm: base64(new Uint8Array(data.samples.buffer)),
    });
  };

  let mouth = options.mouth ?? null; // [x0, y0, x1, y1] in video pixels
  function watchVideo(video) {
    const canvas = new OffscreenCanvas(BAND_W, BAND_H * 4);
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const onFrame = async (now, meta) => {
      if (!video.isConnected) return;
      video.requestVideoFrameCallback(onFrame);
      g.drawImage(video, 0, 0, BAND_W, BAND_H * 4);
      const rgba = g.getImageData(0, 0, BAND_W, BAND_H).data;
      const luma = new Uint8Array(BAND_W * BAND_H);
      for (let i = 0; i < luma.length; i++) {
        luma[i] = (rgba[4 * i] * 77 + rgba[4 * i + 1] * 150 + rgba[4 * i + 2] * 29) >> 8;
      }
      const report = {
        t: meta.expectedDisplayTime,
        presented: meta.presentedFrames,
        width: meta.width,
        height: meta.height,
        band: base64(luma),
      };
      if (mouth) {
        try {
          report.mouth = await mouthLuma(video, mouth);
        } catch (err) {
          // the element lost its frame between the callback and the read (its track ended or
          // was replaced): this frame cannot be measured; any other error is a real one
          if (err?.name === 'InvalidStateError') return;
          throw err;
        }
      }
      send('video', report);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  // the decoded frame's own luma (no colour conversion) inside [x0, y0, x1, y1]
  async function mouthLuma(video, [x0, y0, x1, y1]) {
    const frame = new VideoFrame(video);
    try {
      const rect = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
      const size = frame.allocationSize({ rect });
      const buffer = new Uint8Array(size);
      const layout = await frame.copyTo(buffer, { rect });
      const { offset, stride } = layout[0];
      const y = new Uint8Array(rect.width * rect.height);
      for (let r = 0; r < rect.height; r++) {
        y.set(buffer.subarray(offset + r * stride, offset + r * stride + rect.width), r * rect.width);
      }
      return { format: frame.format, data: base64(y) };
    } finally {
      frame.close();
    }
  }

  // a track played elsewhere (an audio element), heard here only to be timed: into the recorder
  // and on, silenced, to the output whose timestamps time it
  function tap(mediaStreamTrack) {
    const source = audioContext.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
    const mute = audioContext.createGain();
    mute.gain.value = 0;
    source.connect(audioNode).connect(mute).connect(audioContext.destination);
  }

  return {
    audioNode,
    tap,
    watchVideo,
    report: send,
    setMouth(rect) {
      mouth = rect;
    },
  };
}
