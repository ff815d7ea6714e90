"""The call path as a pipeline of stages, in the manner of Pipecat's frame processors.

Caller audio enters at the top and flows down, one direction of travel:

    inbound (decode → 16 kHz) → turns (VAD, barge-in) → stt → context (history, tools)
    → llm → clauses → tts (→ call rate) → output (the session's event lanes)

Each stage is a ``voice.pipeline.stage.Stage``: it owns the task that works on its data
frames and cancels it itself. System frames (barge-in, cancel, playout, end of call)
are handled the moment they arrive and overtake every data frame still queued;
a few travel up (the agent started speaking, a reply was heard, stop generating).
``voice.pipeline.testing`` runs a stage alone: frames in, frames out, on a virtual clock.
"""
