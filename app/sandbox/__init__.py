"""`ftm sandbox`: a stateful, local emulator of OpenAI's files, fine-tuning, models and
chat-completions API, so the hosted workflow can be tried and tested offline at no cost.
Everything it serves is simulated.

Modules, one idea each:
- ``server``: :class:`~app.sandbox.server.SandboxServer` (background thread, for tests)
  and ``serve_forever`` (the CLI).
- ``api``: the Starlette routes under ``/v1``, authentication, fault injection hooks.
- ``state``: the store and every operation; ``lifecycle``: a job's life on the clock;
  ``clock``: the freezable sandbox clock.
- ``job_request``: checking a create-job body; ``validation``: the training-file check
  (the same as ``ftm data check``); ``training_data``: tokens, epochs, remembered examples.
- ``responder``: how emulated models answer chat completions (see its docstring);
  ``metrics``: the loss curves; ``faults``: :class:`~app.sandbox.faults.FaultPlan`.
"""
