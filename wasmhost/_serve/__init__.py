"""``wasmhost serve``: a WAGI handler module behind an ASGI app.

``wagi`` (the CGI/WAGI request and response), ``guests`` (the pool that runs
each request's fresh instance), ``uvicorn`` (the bounded HTTP protocol);
the ASGI app itself is the public ``wasmhost.asgi``.
"""
