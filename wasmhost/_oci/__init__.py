"""Modules as OCI artifacts: push, pull, inspect, and the stores that hold them.

``client`` (RegistryClient: push, pull, inspect, login), ``reference``
(parsing image references), ``formats`` (media types and the artifact
formats), ``image`` (Wasm container images), ``layout`` (OCI image layouts
on disk), ``remote`` (the registry's HTTP API: auth, redirects, blobs),
``credentials`` (where logins come from), ``store`` (the local content
store of pulled blobs).
"""
