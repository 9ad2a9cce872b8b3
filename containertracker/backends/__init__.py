"""Engine adapters (docker, podman); each imports its SDK only when used."""
