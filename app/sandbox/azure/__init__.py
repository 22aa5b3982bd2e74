"""The OpenAI emulator speaking Azure OpenAI's URL shape (``ftm sandbox --provider
azure``): the same files, jobs and models under ``/openai/...?api-version=V`` with an
``api-key`` header, chat through ``/openai/deployments/NAME/...``, and the control plane's
deployment routes. See api.py."""
