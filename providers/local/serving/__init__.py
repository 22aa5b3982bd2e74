"""Serving local models over an OpenAI-compatible HTTP API (`LocalProvider.deploy`).

One detached server process per base model serves the base and every deployed PEFT
adapter on it, the adapter picked per request by the model name the client sends:

- `plan`: pure decisions: the name an adapter is served under, which base (and server)
  it belongs to, vLLM or transformers, the vLLM command line.
- `server_dir`: the server's directory, the one place the process and the provider agree
  on (config, the adapters it serves, pid, port, log).
- `app`: the transformers server itself (``python -m providers.local.serving.app DIR``).
- `manager`: start, reuse, add an adapter to, check and stop servers.

Nothing here but `app` imports torch.
"""
