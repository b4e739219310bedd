"""mesh-testbed: measure service-mesh data planes on network namespaces."""
