"""pytest's settings: TOM's settings with the models in the test process (``TOM_INFERENCE=inline``).

Unit tests load, replace and time the models inside the test process, and the live
servers they start (which inherit this environment) answer with the same code. The
default, models in supervised children (``TOM_INFERENCE=process``), has tests of its
own that ask for it: voice/tests/test_inference_process.py, test_speech_server.py,
greenlights/tests/test_haproxy_models.py, and every ``tom_run`` test started with no
environment (``clean_env``).
"""

import os

os.environ.setdefault("TOM_INFERENCE", "inline")

from tomsite.settings import *  # noqa: F403
