// The viewer: joins a room and plays one participant's camera and microphone the way a LiveKit
// web app does (livekit-client, track.attach(), the room's Web Audio mix). With "measure" in its
// configuration it also loads probe.js, which reports what is presented and played, and when.
import { Room, RoomEvent, Track } from './livekit-client.esm.mjs';

const $ = (id) => document.getElementById(id);
const config = await (await fetch('config.json', { cache: 'no-store' })).json();
$('room').textContent = config.room;

const audioContext = new AudioContext({ latencyHint: 'interactive' });
// "mix": the room plays audio through this page's Web Audio graph (livekit-client's webAudioMix);
// "element": through an <audio> element per track (livekit-client's default)
const audioPath = config.audio ?? 'mix';
const room = new Room(audioPath === 'mix' ? { webAudioMix: { audioContext } } : {});
const probe = config.measure
  ? await (await import('./probe.js')).createProbe(audioContext, config.measure)
  : null;
let watched = null; // identity of the participant on screen
probe?.report('ready', { rate: audioContext.sampleRate });

function setState(text, live = false) {
  $('state').textContent = text;
  $('state').classList.toggle('live', live);
  probe?.report('state', { state: text });
}

function wanted(participant) {
  if (config.participant) return participant.identity === config.participant;
  return watched === null || participant.identity === watched;
}

function showVideo(track) {
  const element = track.attach();
  element.muted = true;
  element.playsInline = true;
  $('stage').replaceChildren(element);
  element.addEventListener('resize', () => {
    $('video-info').textContent = `${element.videoWidth}x${element.videoHeight}`;
  });
  probe?.watchVideo(element);
}

function playAudio(track) {
  if (probe && audioPath === 'mix') track.setWebAudioPlugins([probe.audioNode]);
  const element = track.attach();
  element.hidden = true;
  document.body.append(element);
  if (probe && audioPath === 'element') probe.tap(track.mediaStreamTrack);
  $('audio-info').textContent =
    audioPath === 'mix' ? `${audioContext.sampleRate} Hz, Web Audio` : 'audio element';
}

room
  .on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
    if (!wanted(participant)) return;
    watched = participant.identity;
    $('who').textContent = participant.identity;
    if (track.kind === Track.Kind.Video) showVideo(track);
    if (track.kind === Track.Kind.Audio) playAudio(track);
    probe?.report('track', {
      media: track.kind,
      participant: participant.identity,
      source: publication.source,
      stream: track.mediaStream?.id ?? null,
    });
  })
  .on(RoomEvent.TrackUnsubscribed, (track) => {
    for (const element of track.detach()) element.remove();
  })
  .on(RoomEvent.ParticipantDisconnected, (participant) => {
    if (participant.identity !== watched) return;
    watched = null;
    $('who').textContent = '-';
    $('stage').replaceChildren($('waiting') ?? document.createTextNode('waiting'));
  })
  .on(RoomEvent.AudioPlaybackStatusChanged, showPlayButton)
  .on(RoomEvent.Disconnected, () => setState('disconnected'))
  .on(RoomEvent.Reconnecting, () => setState('reconnecting'))
  .on(RoomEvent.Reconnected, () => setState('connected', true));

function showPlayButton() {
  $('play').hidden = room.canPlaybackAudio && audioContext.state === 'running';
}
audioContext.addEventListener('statechange', showPlayButton);

$('play').addEventListener('click', async () => {
  await audioContext.resume();
  await room.startAudio();
  $('play').hidden = true;
});
$('mic').hidden = !config.can_publish;
$('mic').addEventListener('click', async () => {
  const enabled = !room.localParticipant.isMicrophoneEnabled;
  await room.localParticipant.setMicrophoneEnabled(enabled);
  $('mic').classList.toggle('on', enabled);
  $('mic').textContent = enabled ? 'mute microphone' : 'talk (microphone)';
});

window.avsync = {
  room,
  probe,
  showFigures(text) {
    $('figures').hidden = !text;
    $('figures').textContent = text;
  },
};

try {
  await room.connect(config.url, config.token);
  setState('connected', true);
  showPlayButton();
} catch (error) {
  setState(`failed: ${error.message ?? error}`);
  throw error;
}
