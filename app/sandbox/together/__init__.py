"""The Together AI emulator: Together's files and fine-tuning routes on localhost, with
the OpenAI emulator's accelerated clock, fault plan and state-file persistence.

``TogetherSandboxServer`` (server.py) serves it in a background thread for tests;
``ftm sandbox --provider together`` serves it in the foreground. Shapes follow Together's
official OpenAPI spec (vendored in tests/specs/together/), which the tests validate every
response against.
"""
