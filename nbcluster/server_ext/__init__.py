"""The Jupyter server extension: start, attach, scale and stop clusters that outlive
kernels, a REST API under ``{base_url}nbcluster/api/`` (``openapi.yaml``), the page at
``{base_url}nbcluster/``, and the discovery file kernels read (``%cluster connect NAME``).

Modules: ``app`` (the ExtensionApp and its traitlets), ``manager`` (the clusters one
server knows; ``entries``: what it keeps per cluster), ``local`` (clusters it makes: detached heads with the autoscaler),
``registry`` (its files, mode 0600), ``models`` (bodies and the Cluster JSON),
``base`` (the handlers' base class and domain errors), ``handlers`` (the REST handlers and the route
table), ``sse`` and ``events_handler`` (server-sent events), ``jobs_proxy``, ``page``.

Enabled as the server extension ``nbcluster`` (``_jupyter_server_extension_points`` is
in the package root, so importing ``nbcluster`` imports nothing of Jupyter's).
"""
