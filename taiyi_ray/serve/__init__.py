"""Serving: a Ray Serve application with an OpenAI-compatible API and structured biomedical task endpoints.

Modules: `app` (the deployment and its builders), `api` (HTTP routes), `openai_api` and `tasks` (the
handlers), `engine` (the decoding loop, in the replica's engine process), `models` (base model + LoRA adapters by id), `schemas`, `errors`,
`auth`, `logprobs`, `service`, and `job` (the serve job of DESIGN.md).
"""
