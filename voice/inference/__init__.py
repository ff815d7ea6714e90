"""The LLM out of the web process: llama.cpp's own ``llama-server``, batched, supervised.

In-process llama.cpp (voice.llm.LlamaCppLlm) has one context behind a lock: callers
queue one behind another, and a native crash in it (SIGILL seen) ends every call of the
web process. ``TOM_LLM_BACKEND=llamacpp-server`` instead runs the model in
``llama-server --parallel N`` (deploy/local/_llama_server.sh builds it from the llama.cpp
source that the installed llama-cpp-python vendors, for the same portable CPU target):

- it decodes N conversations together (continuous batching across N slots), so a second
  caller's reply starts while the first one's is being generated;
- one copy of the model per host, shared by every web process of the host;
- a crash there costs the turns it was generating: each of those turns apologises
  (voice.session.apology), the server is restarted with back-off and the log says why it
  died (tomsite.runner.exit_reason), and the call's next turn is answered.

Who runs it: with ``TOM_LLM_SERVER_URL`` empty, the first web process of the host that
needs the LLM takes a lock under ``TOM_DATA_DIR/run`` and supervises the server as its
child (``supervisor``); the host's other web processes find its address in the state file
beside the lock and use it, and one of them takes over when the owner exits. Production
may run it as its own unit instead (deploy/systemd/tom-llm.service, ``python -m
voice.inference serve``) and point every web process at it with ``TOM_LLM_SERVER_URL``.
TOM talks to it through the OpenAI-compatible backend (``backend.LlamaServerLlm``).
"""
