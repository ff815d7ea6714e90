"""Whisper and Piper out of the web process: TOM's own speech server, batched, supervised.

In-process (voice.stt.WhisperStt, voice.tts.PiperTts) every call of a web process shares
its models through threads, each utterance decoded alone, and a native crash in
CTranslate2, ONNX Runtime or espeak-ng ends every call of the process. With
``TOM_STT_BACKEND=speech-server`` and/or ``TOM_TTS_BACKEND=speech-server`` the models run
in ``python -m voice.speech serve`` instead (``server``, ``service``):

- utterances of several calls that arrive while Whisper is busy are decoded together, one
  encoder pass and one ``generate`` for the batch (``whisper_batch``, ``TOM_STT_BATCH``);
- clauses are synthesized by a few workers in the order (clause index, arrival), so every
  caller's first clause comes before anyone's second (``synth_queue``);
- one copy of the models per host, shared by every web process of the host;
- a crash there costs the turns it was serving (each apologises, in espeak-ng's voice in
  the web process when the server was speaking), the server is restarted with back-off,
  and the call's next turn is answered.

Who runs it is decided as for llama-server (voice.inference.host, with ``backend``'s
``SPEECH_SPEC``): the host's first web process supervises it as its child, the others
use it; production may run it as deploy/systemd/tom-speech.service and point the web
processes at it with ``TOM_SPEECH_SERVER_URL``. The wire format is OpenAI's
(``/v1/audio/transcriptions``, ``/v1/audio/speech``) with a few TOM fields, and the
clients are the OpenAI backends pointed at it (``backend``).
"""
