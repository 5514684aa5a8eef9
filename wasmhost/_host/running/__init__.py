"""Running a guest: one run as a scope, the kinds of guest, and the guest's stdio.

``run`` (a run's scope, its outcome, and the result or exception it
concludes in), ``kinds`` (core modules and components as strategies) and
``stdio`` (the guest's stdin, stdout and stderr). ``Host`` (``_host.host``)
sits above; ``engines`` and ``values`` below.
"""
