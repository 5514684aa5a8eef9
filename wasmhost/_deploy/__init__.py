"""Deploy targets: ``bundle`` (OCI runtime bundles for crun and friends) and
``k8s`` (Kubernetes manifests for crun, runwasi shims and Krustlet).
"""
