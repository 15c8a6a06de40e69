"""`lntune serve`: a tuned model behind an OpenAI-compatible chat API and a web chat page.

    lntune serve --model runs/quickstart/stage2-layernorm [--host 127.0.0.1] [--port 8000] [--image-root DIR]

Modules: api_errors (OpenAI-style error objects), images (data: URLs and files under --image-root),
chat_request (a request's JSON to a prompt and an image), engine (the model, one generation at a time from a
bounded queue, streamed token by token), app (the HTTP routes), page.html (the chat page). docs/serving.md
describes the API.
"""
