"""Serving registered versions: an HTTP endpoint in Vertex AI's predict format, and try-it calls.

One base model is loaded once and carries many adapters, switched per request (``adapters.py``);
one worker thread batches requests per adapter (``batching.py``); ``app.py`` is the HTTP API.
"""
