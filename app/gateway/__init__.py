"""The gateway (`ftm serve`): an OpenAI-compatible front that resolves ``TASK:ALIAS`` at
request time, with the keys its clients authenticate with."""
