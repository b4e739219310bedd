"""The cluster stage: namespaces, links, cgroups and workload agents (the `none` baseline).

`plan` is pure (names and addresses); `netns`, `links`, `cgroups`, `procs` and `services`
touch the kernel; `namespaces.NamespaceCluster` composes them. A Mininet backend will sit
beside it behind the same small interface (`backend.ClusterBackend`)."""
