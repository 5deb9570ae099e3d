"""The api service's parts: live state from the pipeline, the HTTP app (JSON, SSE, the page), push to browsers."""
