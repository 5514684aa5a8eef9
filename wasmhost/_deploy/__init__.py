"""Deploy targets: ``bundle`` (OCI runtime bundles for crun and friends) and
``k8s`` (Kubernetes manifests for wasmhost-runtime, crun, youki, the runwasi shims
and Krustlet, and the containerd or CRI-O table each node needs).
"""
