// "Call TOM": the supervisor's browser is the caller. The microphone goes to TOM as a
// fork module's call would (metadata first, then binary L16 frames, from
// pcm-worklet.js); TOM answers in the jambonz stream protocol (voice.browser_call):
// binary L16 to play, "mark" to answer once played, "killAudio" on barge-in,
// "transcription", and "disconnect" or "error" when it ends the call.
"use strict";

(() => {
  const RATE = 16000;
  // Started after this much cushion when playback had run dry: the server paces its
  // frames in real time, so a little jitter would otherwise click between them.
  const PREBUFFER_S = 0.12;

  // What the page did, for whoever watches it (the browser test reads it).
  const state = window.tomTestCall = {
    state: "idle", callUuid: null, sentFrames: 0, agentFrames: 0, agentSamples: 0,
    agentSamplesPlayed: 0, killed: 0, marks: 0,
  };

  class Player {
    // Agent audio: one AudioBufferSourceNode per frame, scheduled back to back.
    constructor(ctx, send) {
      this.ctx = ctx;
      this.send = send;
      this.sources = new Set();
      this.until = 0;
      this.marks = new Map(); // name -> timer answering "playout"
    }

    play(data) {
      const view = new DataView(data);
      const n = data.byteLength >> 1;
      if (n === 0) return;
      const buffer = this.ctx.createBuffer(1, n, RATE);
      const samples = buffer.getChannelData(0);
      for (let i = 0; i < n; i++) samples[i] = view.getInt16(i * 2, true) / 32768;
      const source = this.ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(this.ctx.destination);
      const now = this.ctx.currentTime;
      if (this.until < now + 0.01) this.until = now + PREBUFFER_S;
      source.start(this.until);
      this.until += n / RATE;
      this.sources.add(source);
      source.onended = () => {
        if (this.sources.delete(source)) state.agentSamplesPlayed += n;
      };
      state.agentFrames += 1;
      state.agentSamples += n;
    }

    mark(name) {
      // Answered once everything scheduled before it has played (as jambonz does).
      const delay = Math.max(0, this.until - this.ctx.currentTime);
      this.marks.set(name, setTimeout(() => {
        this.marks.delete(name);
        state.marks += 1;
        this.send({ type: "mark", data: { name, event: "playout" } });
      }, delay * 1000));
    }

    stop() {
      // Barge-in: nothing scheduled plays on; pending marks are answered "cleared".
      for (const source of this.sources) {
        this.sources.delete(source);
        try { source.stop(); } catch (error) { /* not started yet */ }
      }
      this.until = 0;
      for (const [name, timer] of this.marks) {
        clearTimeout(timer);
        this.send({ type: "mark", data: { name, event: "cleared" } });
      }
      this.marks.clear();
    }
  }

  function setup(root) {
    const callButton = document.getElementById("call-tom");
    const hangButton = document.getElementById("hang-up");
    const variantSelect = document.getElementById("variant");
    const languageSelect = document.getElementById("language");
    const status = document.getElementById("call-status");
    const transcript = document.getElementById("transcript");
    const link = document.getElementById("call-link");
    let call = null;

    function say(text, phase) {
      status.textContent = text;
      status.dataset.state = phase;
      state.state = phase;
    }

    function line(role, turn, text, final) {
      let item = transcript.querySelector(`li[data-role="${role}"][data-turn="${turn}"]`);
      if (!item) {
        item = document.createElement("li");
        item.className = `line line-${role === "agent" ? "agent" : "caller"}`;
        item.dataset.role = role;
        item.dataset.turn = String(turn);
        const who = document.createElement("span");
        who.className = "who";
        who.textContent = role === "agent" ? "TOM" : "You";
        item.append(who, document.createElement("span"));
        transcript.append(item);
      }
      item.lastChild.textContent = text;
      item.dataset.final = final ? "true" : "false";
    }

    async function start() {
      callButton.disabled = true;
      variantSelect.disabled = true;
      languageSelect.disabled = true;
      transcript.replaceChildren();
      link.hidden = true;
      Object.assign(state, { callUuid: null, sentFrames: 0, agentFrames: 0, agentSamples: 0,
                             agentSamplesPlayed: 0, killed: 0, marks: 0 });
      say("Asking for the microphone…", "starting");
      try {
        call = await open(variantSelect.value, languageSelect.value);
      } catch (error) {
        say(`Could not start the call: ${error.message || error}`, "failed");
        finish();
      }
    }

    async function open(variant, language) {
      if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
        // Browsers give the microphone and AudioWorklets to secure pages only.
        throw new Error("the microphone needs this console over HTTPS (or on localhost)");
      }
      const media = await navigator.mediaDevices.getUserMedia({
        // Echo cancellation keeps TOM's own voice from the speakers out of the microphone
        // (it would barge in on itself).
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true,
                 autoGainControl: true },
      });
      const ctx = new AudioContext();
      const current = { media, ctx, ws: null, node: null, player: null, ended: false };
      call = current;
      await ctx.audioWorklet.addModule(root.dataset.worklet);
      await ctx.resume();
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${root.dataset.socketPath}`);
      ws.binaryType = "arraybuffer";
      current.ws = ws;
      const send = (message) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
      };
      current.player = new Player(ctx, send);
      say("Calling…", "connecting");
      ws.onopen = () => {
        const metadata = { sampleRate: RATE, language };
        if (variant) metadata.tomVariant = variant;
        ws.send(JSON.stringify(metadata));
        const source = ctx.createMediaStreamSource(media);
        const node = new AudioWorkletNode(ctx, "pcm-worklet", {
          numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
          processorOptions: { outRate: RATE },
        });
        node.port.onmessage = (event) => {
          if (ws.readyState === WebSocket.OPEN) {
            ws.send(event.data);
            state.sentFrames += 1;
          }
        };
        // The node must reach the destination to be rendered; it outputs silence.
        const mute = ctx.createGain();
        mute.gain.value = 0;
        source.connect(node).connect(mute).connect(ctx.destination);
        current.node = node;
        hangButton.disabled = false;
        say("In a call with TOM.", "live");
      };
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") {
          current.player.play(event.data);
          return;
        }
        for (const message of parseAll(event.data)) handle(current, message);
      };
      ws.onclose = (event) => {
        if (!current.ended) {
          if (state.state === "connecting") {
            say("The server refused the call (signed out, or not allowed to call?).", "failed");
          } else if (state.state === "live") {
            say(event.code === 1000 ? "The call ended." : `The call ended (code ${event.code}).`,
                "ended");
          }
        }
        finish();
      };
      return current;
    }

    function parseAll(text) {
      try { return [JSON.parse(text)]; } catch (error) { return []; }
    }

    function handle(current, message) {
      const data = message.data || {};
      if (message.type === "tomCall") {
        state.callUuid = data.uuid;
        link.firstElementChild.href = root.dataset.callUrl.replace("CALL_UUID", data.uuid);
        link.hidden = false;
      } else if (message.type === "transcription") {
        line(data.role, data.turn, data.text, data.final);
      } else if (message.type === "mark") {
        current.player.mark(data.name);
      } else if (message.type === "killAudio") {
        state.killed += 1;
        current.player.stop();
      } else if (message.type === "disconnect") {
        current.ended = true;
        say(`TOM ended the call (${data.reason || "hang-up"}).`, "ended");
      } else if (message.type === "error") {
        current.ended = true;
        say(`The call failed: ${data.message || "error"}`, "failed");
      }
    }

    function finish() {
      const current = call;
      call = null;
      if (current) {
        current.ended = true;
        if (current.node) current.node.port.postMessage("stop");
        if (current.player) current.player.stop();
        if (current.ws && current.ws.readyState <= WebSocket.OPEN) current.ws.close(1000);
        current.media.getTracks().forEach((track) => track.stop());
        current.ctx.close();
      }
      callButton.disabled = false;
      variantSelect.disabled = false;
      languageSelect.disabled = false;
      hangButton.disabled = true;
    }

    callButton.addEventListener("click", start);
    hangButton.addEventListener("click", () => {
      if (call) say("You hung up.", "ended");
      finish();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.querySelector(".console-test-call");
    if (root) setup(root);
  });
})();
